package chain

import "github.com/danehook/danehook/internal/atomicfile"

// WriteFile replaces the file at path with data, atomically: data goes to a
// new file ".<name>.tmp-<random>" in the same directory, created with mode
// 0600, written, fsynced and closed, then renamed over path, and the
// directory is fsynced so the rename survives a crash. Readers (Postfix)
// see the old file or the new one, never a mix. The result has mode 0600
// even when the file it replaces was more open. When path is a symbolic
// link, the file it points to is replaced and the link kept.
//
// On any error the temporary file is removed and the previous file is left
// as it was (a crash can leave a ".<name>.tmp-*" file behind, never a
// partial path). Errors name path and the step that failed; a failed
// directory fsync is reported although the new file is already in place.
func WriteFile(path string, data []byte) error {
	return atomicfile.Write(path, data, 0o600)
}
