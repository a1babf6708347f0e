package rotate

// crashHook, when set, is called at every step boundary of a rotation
// ("stage:key-written", "stage:recorded", "commit:recorded",
// "commit:swapped"). Production binaries never set it: only this package's
// crash-safety tests do, in a child test process that kills itself there,
// and then check that running the step again converges.
var crashHook func(point string)

// crashpoint marks a step boundary for the crash-safety tests.
func crashpoint(point string) {
	if crashHook != nil {
		crashHook(point)
	}
}
