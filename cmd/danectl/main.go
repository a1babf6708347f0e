// Command danectl is the operator's tool for danehook: offline TLSA records,
// plans, publishing, status and checks. See README.md.
package main

import "os"

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}
