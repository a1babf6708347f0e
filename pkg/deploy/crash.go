package deploy

// crashHook, when set, is called at every step boundary with the name of
// the boundary ("deploy:published", "reload:reloaded", …). Production
// binaries never set it: only this package's crash-safety tests do, in a
// child test process that kills itself there, as a power cut or an OOM
// kill would, and then check that re-running the step converges.
var crashHook func(point string)

// crashpoint marks a step boundary for the crash-safety tests.
func crashpoint(point string) {
	if crashHook != nil {
		crashHook(point)
	}
}
