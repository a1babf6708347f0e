package postfix

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/danehook/danehook/internal/atomicfile"
)

// servedCacheVersion changes whenever Config or what Served asks postconf
// changes, so that a cache written by another danehook version is never
// read.
const servedCacheVersion = 3

// servedCacheFile is the document Served keeps in Instance.ServedCache.
type servedCacheFile struct {
	Version int     `json:"version"`
	Key     string  `json:"key"`
	Config  *Config `json:"config"`
}

// servedKey is the hex SHA-256 of everything `postconf -M`, `-P` and `-x`
// print depends on for the parameters Served asks: the content of main.cf
// and master.cf (ConfigDigest), the postconf program (its path, size and
// modification time: a Postfix upgrade changes defaults), the -c directory
// and the host name (defaults such as $myhostname may appear in a path).
// It returns an error when a file cannot be read or postconf is not found;
// Served then runs postconf.
func (in *Instance) servedKey() (string, error) {
	digest, err := in.ConfigDigest()
	if err != nil {
		return "", err
	}
	prog, err := exec.LookPath(in.postconfPath())
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(prog)
	if err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	h := sha256.New()
	fmt.Fprintf(h, "v%d\n%s\n%s %d %d\n%s\n%s\n", servedCacheVersion, digest, prog, fi.Size(), fi.ModTime().UnixNano(), in.ConfigDir, host)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readServedCache returns the cached Config when path holds one under key,
// else nil (no file, another key, another version or an unreadable file:
// the caller asks postconf).
func readServedCache(path, key string) *Config {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var f servedCacheFile
	if json.Unmarshal(b, &f) != nil || f.Version != servedCacheVersion || f.Key != key || f.Config == nil {
		return nil
	}
	return f.Config
}

// writeServedCache stores cfg under key in path (0600, atomically). A
// failure to write only costs the next run its postconf commands, so it is
// not reported.
func writeServedCache(path, key string, cfg *Config) {
	b, err := json.Marshal(servedCacheFile{Version: servedCacheVersion, Key: key, Config: cfg})
	if err != nil {
		return
	}
	if os.MkdirAll(filepath.Dir(path), 0o700) != nil {
		return
	}
	_ = atomicfile.Write(path, b, 0o600)
}
