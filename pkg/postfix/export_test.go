package postfix

// Internals exported to the external test package.
var (
	SplitList    = splitList
	ParseMaillog = parseMaillog
	HasKeyword   = hasKeyword
	NameMatches  = nameMatches
	NewLogLines  = newLogLines
	MainCFValue  = mainCFValue

	ParseAssignmentList = parseAssignmentList
	CutServiceParam     = cutServiceParam
	SMTPDServices       = smtpdServices
	ShellQuote          = shellQuote
	SameFiles           = sameFiles
)

// NoMatch exposes noMatch.
func (v *Verification) NoMatch() *NoMatchError { return v.noMatch() }

// WithoutTerminal returns in set to capture command output through pipes
// only, as on systems without pseudo-terminals: errors then rely on
// maillog_file.
func WithoutTerminal(in Instance) Instance { in.noTerminal = true; return in }
