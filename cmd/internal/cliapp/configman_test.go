package cliapp

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/danehook/danehook/pkg/config"
)

// TestConfigManPage: danehook.toml(5) documents every setting pkg/config
// decodes (the toml tags of config.Config and the tables in it), each as
// a ".B name" line.
func TestConfigManPage(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "packaging", "man", "danehook.toml.5"))
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, table string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Map || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] {
			return
		}
		seen[typ] = true
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag := strings.Split(f.Tag.Get("toml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Map {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft.PkgPath() == typ.PkgPath() && ft.Name() != "Duration" {
				if !strings.Contains(page, ".SH ["+tag) {
					t.Errorf("danehook.toml(5) has no section for table [%s]", tag)
				}
				walk(f.Type, tag)
				continue
			}
			if !strings.Contains(page, "\n.B "+tag+"\n") {
				t.Errorf("danehook.toml(5) does not document %s%s (want a \".B %s\" line)", map[bool]string{true: "", false: "[" + table + "] "}[table == ""], tag, tag)
			}
		}
	}
	walk(reflect.TypeOf(config.Config{}), "")
	if len(seen) < 3 {
		t.Fatalf("walked only %d types; the test no longer sees config's tables", len(seen))
	}
}
