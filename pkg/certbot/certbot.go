// Package certbot holds what danehook knows of certbot's files: the layout
// of a lineage (<config-dir>/live/<name>/ links into archive/<name>/, the
// renewal configuration <config-dir>/renewal/<name>.conf), key pinning and
// the key hand-over of a rotation (SwapKey).
//
// The renewal configuration is a configobj INI file whose [renewalparams]
// section holds the options certbot reuses on every renewal
// (certbot/_internal/storage.py, renewal.py). danehook needs
// reuse_key = True there so that renewals keep the key its TLSA records pin.
//
// It may import pkg/chain (PEM reading), pkg/tlsa (the key digest) and
// internal/atomicfile, nothing else of danehook.
package certbot

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/danehook/danehook/internal/atomicfile"
)

// RenewalConf returns the renewal configuration file of the lineage whose
// live directory is liveDir (<config-dir>/live/<name>): <config-dir>/renewal/<name>.conf.
func RenewalConf(liveDir string) string {
	liveDir = filepath.Clean(liveDir)
	return filepath.Join(filepath.Dir(filepath.Dir(liveDir)), "renewal", filepath.Base(liveDir)+".conf")
}

// ReuseKey reports whether the renewal configuration at path has
// reuse_key = True in [renewalparams] (configobj booleans: True/true/yes/on/1).
// Errors name the file.
func ReuseKey(path string) (bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("certbot renewal configuration: %w", err)
	}
	_, val, _ := find(data)
	return truthy(val), nil
}

// EnsureReuseKey sets reuse_key = True in [renewalparams] of the renewal
// configuration at path, keeping every other line, and writes the file
// atomically with its mode. It returns whether the file changed. A file
// without a [renewalparams] section is an error: it is not a certbot renewal
// configuration.
func EnsureReuseKey(path string) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, fmt.Errorf("certbot renewal configuration: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("certbot renewal configuration: %w", err)
	}
	section, val, line := find(data)
	if section < 0 {
		return false, fmt.Errorf("certbot renewal configuration %s has no [renewalparams] section; is it a certbot renewal file?", path)
	}
	if truthy(val) {
		return false, nil
	}
	lines := strings.SplitAfter(string(data), "\n")
	if line >= 0 {
		lines[line] = "reuse_key = True\n"
	} else {
		lines = append(lines[:section+1], append([]string{"reuse_key = True\n"}, lines[section+1:]...)...)
	}
	if err := atomicfile.Write(path, []byte(strings.Join(lines, "")), fi.Mode().Perm()); err != nil {
		return false, err
	}
	return true, nil
}

// find returns the line index of [renewalparams] (-1 when absent), the
// value of its reuse_key and that line's index (-1 when absent).
func find(data []byte) (section int, val string, line int) {
	section, line = -1, -1
	in := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for i := 0; sc.Scan(); i++ {
		t := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(t, "[") {
			in = t == "[renewalparams]"
			if in {
				section = i
			}
			continue
		}
		if !in || strings.HasPrefix(t, "#") {
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if ok && strings.TrimSpace(k) == "reuse_key" {
			val, line = strings.Trim(strings.TrimSpace(v), `"'`), i
		}
	}
	return section, val, line
}

func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "true", "yes", "on", "1":
		return true
	}
	return false
}
