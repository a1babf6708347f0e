package bindlab_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/fixture"
	"github.com/danehook/danehook/pkg/tlsa"
)

// floorPerMessage is how many records the floor puts in one nsupdate
// `send`: the most nsupdate 9.18 fits in one message for these owners is
// between 860 and 870 (measured), so 850.
const floorPerMessage = 850

// TestServeBenchLab is not a test: scripts/bench-dnsupdate.sh runs it to
// keep a BIND lab (primary and secondary) running while hyperfine times
// commands against it. It runs only when DANEHOOK_BENCH_LAB_DIR is set,
// with DANEHOOK_BENCH_OWNERS owners spread over DANEHOOK_BENCH_ZONES zones
// (owner i in zone z(i mod zones).bench.test.), and writes into that
// directory:
//
//	danehook.toml   a danectl configuration: lineages of up to 100 hosts (the
//	                SAN limit of Let's Encrypt), each with its own key
//	floor.txt       one nsupdate script adding every owner's 3 1 1 record:
//	                per zone one `send` of up to floorPerMessage records
//	                (nsupdate 9.18 does not compress owner names: 870 records
//	                of these names make it fail with "ran out of space")
//	owners/N.txt    one nsupdate script per owner (one record, one send)
//	reset.txt       an nsupdate script deleting every owner's TLSA RRset
//	lab.env         PRIMARY, PORT, KEY_FILE, RNDC_CONF, STATS (shell syntax)
//	ready           written last
//
// and waits until a file named stop appears there.
func TestServeBenchLab(t *testing.T) {
	dir := os.Getenv("DANEHOOK_BENCH_LAB_DIR")
	if dir == "" {
		t.Skip("only for scripts/bench-dnsupdate.sh (DANEHOOK_BENCH_LAB_DIR unset)")
	}
	owners, err1 := strconv.Atoi(os.Getenv("DANEHOOK_BENCH_OWNERS"))
	nz, err2 := strconv.Atoi(os.Getenv("DANEHOOK_BENCH_ZONES"))
	if err1 != nil || err2 != nil || owners < 1 || nz < 1 {
		t.Fatalf("DANEHOOK_BENCH_OWNERS=%q DANEHOOK_BENCH_ZONES=%q: want positive integers", os.Getenv("DANEHOOK_BENCH_OWNERS"), os.Getenv("DANEHOOK_BENCH_ZONES"))
	}
	zones := make([]string, nz)
	for i := range zones {
		zones[i] = fmt.Sprintf("z%d.bench.test.", i)
	}
	// The secondary lets the key transfer the zones (DANEHOOK_BENCH_SECONDARY_XFR=0:
	// it refuses), so danectl reads each zone whole at both servers.
	l := bindlab.Start(t, bindlab.Options{Zones: zones, TTL: 300, SecondaryTransfers: os.Getenv("DANEHOOK_BENCH_SECONDARY_XFR") != "0"})
	ca := fixture.NewCA(t)
	host := func(i int) string { return fmt.Sprintf("h%05d.%s", i, strings.TrimSuffix(zones[i%nz], ".")) }
	server := fmt.Sprintf("server %s %d\n", bindlab.PrimaryIP, l.Port)

	var cfg strings.Builder
	fmt.Fprintf(&cfg, "state_dir = %q\n[provider.lab]\ntype = \"rfc2136\"\nserver = %q\nkey_file = %q\nnameserver_port = %d\ntimeout = 10\n",
		filepath.Join(dir, "state"), l.Primary, l.KeyFile, l.Port)
	// The zones named, as an operator whose primary serves them would
	// (and as the floor's nsupdate script names each), so their owners
	// are read from the primary's transfer too (pkg/deploy observeOwners);
	// scripts/bench-dnsupdate.sh's "discovery" column removes this line,
	// and each owner's zone then comes from a direct read at the primary.
	if nz == 1 {
		fmt.Fprintf(&cfg, "zone = %q\n", zones[0])
	} else {
		quoted := make([]string, nz)
		for i, z := range zones {
			quoted[i] = strconv.Quote(z)
		}
		fmt.Fprintf(&cfg, "zones = [%s]\n", strings.Join(quoted, ", "))
	}
	byZone := make([][]string, nz) // per zone: the floor's update lines
	var reset strings.Builder
	if err := os.MkdirAll(filepath.Join(dir, "owners"), 0o755); err != nil {
		t.Fatal(err)
	}
	for lin := 0; lin*100 < owners; lin++ {
		k, c, _ := ca.Issue(t, nil)
		chainFile := filepath.Join(dir, fmt.Sprintf("l%03d.pem", lin))
		fixture.WriteFile(t, chainFile, k, c)
		sum, err := tlsa.SPKIDigest(fixture.Leaf(t, c))
		if err != nil {
			t.Fatal(err)
		}
		r := tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: sum[:]}
		var hosts []string
		for i := lin * 100; i < min(owners, (lin+1)*100); i++ {
			hosts = append(hosts, strconv.Quote(host(i)))
			o := "_25._tcp." + host(i) + "."
			line := fmt.Sprintf("update add %s 300 IN TLSA %s\n", o, r)
			byZone[i%nz] = append(byZone[i%nz], line)
			script := server + "zone " + zones[i%nz] + "\n" + line + "send\n"
			if err := os.WriteFile(filepath.Join(dir, "owners", fmt.Sprintf("%05d.txt", i)), []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		fmt.Fprintf(&cfg, "[lineage.l%03d]\nhosts = [%s]\nttl = 300\nprovider = \"lab\"\nallow_untrusted = true\nchain_file = %q\n",
			lin, strings.Join(hosts, ", "), chainFile)
	}
	var floor strings.Builder
	floor.WriteString(server)
	reset.WriteString(server)
	for z, lines := range byZone {
		for i := 0; i < len(lines); i += floorPerMessage {
			fmt.Fprintf(&floor, "zone %s\n%ssend\n", zones[z], strings.Join(lines[i:min(len(lines), i+floorPerMessage)], ""))
		}
		for i := 0; i < len(lines); i += 1000 {
			fmt.Fprintf(&reset, "zone %s\n", zones[z])
			for _, line := range lines[i:min(len(lines), i+1000)] {
				fmt.Fprintf(&reset, "update delete %s IN TLSA\n", strings.Fields(line)[2])
			}
			reset.WriteString("send\n")
		}
	}
	env := fmt.Sprintf("PRIMARY=%s\nSECONDARY=%s\nPORT=%d\nKEY_FILE=%s\nRNDC_CONF=%s\nSTATS=%s\n",
		l.Primary, l.Secondary, l.Port, l.KeyFile, filepath.Join(l.Dir, "rndc.conf"), filepath.Join(l.Dir, "primary", "named.stats"))
	for name, text := range map[string]string{"danehook.toml": cfg.String(), "floor.txt": floor.String(), "reset.txt": reset.String(), "lab.env": env} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "stop")); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
