package main

import (
	"io"
	"reflect"
	"testing"
)

// TestCommandOrder checks that --help lists the commands in the order an
// operator meets them (one list, in commands()).
func TestCommandOrder(t *testing.T) {
	var got []string
	for _, c := range newApp(io.Discard, io.Discard).Commands {
		got = append(got, c.Name)
	}
	want := []string{"init", "config", "tlsa", "plan", "publish", "status", "prune", "check", "tick", "rotate"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("commands %q, want %q", got, want)
	}
}
