package certbot

import (
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/danehook/danehook/internal/atomicfile"
	"github.com/danehook/danehook/pkg/chain"
)

// archiveName matches the versioned files certbot keeps in
// archive/<name>/ (certbot/_internal/storage.py: "<kind><version>.pem").
var archiveName = regexp.MustCompile(`^(cert|chain|fullchain|privkey)(\d+)\.pem$`)

// SwapKey hands a staged key to certbot for the lineage whose live
// directory is liveDir (<config-dir>/live/<name>): it writes key (PKCS #8
// PEM, mode 0600) as the next privkey version in the archive directory the
// live privkey.pem link points into (privkeyN.pem, N one past the highest
// version of any of the four files) and repoints the link to it
// atomically, relative as certbot makes it. The next renewal with
// reuse_key = True then certifies that key (certbot reads the file the
// link names). When the link already leads to key, nothing changes. It
// returns whether it changed anything. A live privkey.pem that is not a
// symbolic link is an error: danehook does not rewrite a lineage certbot
// does not manage.
func SwapKey(liveDir string, key crypto.Signer) (changed bool, err error) {
	link := filepath.Join(liveDir, LiveKey)
	if chain.HoldsKey(link, key) {
		return false, nil
	}
	target, err := os.Readlink(link)
	if err != nil {
		return false, fmt.Errorf("certbot %s is not a symbolic link into the archive: %w", link, err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(liveDir, target)
	}
	archive := filepath.Dir(target)
	next, err := nextVersion(archive)
	if err != nil {
		return false, err
	}
	data, err := chain.EncodeKey(key)
	if err != nil {
		return false, fmt.Errorf("certbot: swap key of %q: %w", liveDir, err)
	}
	file := filepath.Join(archive, fmt.Sprintf("privkey%d.pem", next))
	if err := atomicfile.Write(file, data, 0o600); err != nil {
		return false, fmt.Errorf("certbot: %w", err)
	}
	rel, err := filepath.Rel(liveDir, file)
	if err != nil {
		rel = file
	}
	if err := atomicfile.Symlink(rel, link); err != nil {
		return false, fmt.Errorf("certbot key: %w", err)
	}
	return true, nil
}

// nextVersion returns one past the highest version of the archive files.
func nextVersion(archive string) (int, error) {
	entries, err := os.ReadDir(archive)
	if err != nil {
		return 0, fmt.Errorf("certbot archive: %w", err)
	}
	high := 0
	for _, en := range entries {
		if m := archiveName.FindStringSubmatch(en.Name()); m != nil {
			if n, _ := strconv.Atoi(m[2]); n > high {
				high = n
			}
		}
	}
	return high + 1, nil
}
