package propagate

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/danehook/danehook/pkg/tlsa"
)

// jsonState is the JSON shape of ServerState: records in presentation form.
type jsonState struct {
	plainState
	Records []string `json:"records"`
}

type plainState ServerState

// MarshalJSON encodes s with Records as presentation-form strings
// ("3 1 1 <lower-case hex>", RFC 6698 §2.2), never null.
func (s ServerState) MarshalJSON() ([]byte, error) {
	out := jsonState{plainState: plainState(s), Records: []string{}}
	for _, r := range s.Records {
		out.Records = append(out.Records, r.String())
	}
	return json.Marshal(out)
}

// UnmarshalJSON decodes the form MarshalJSON writes. It returns an error for
// a record that is not "<usage> <selector> <matching type> <hex>".
func (s *ServerState) UnmarshalJSON(b []byte) error {
	var in jsonState
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*s = ServerState(in.plainState)
	s.Records = nil
	for _, txt := range in.Records {
		r, err := parseServed(txt)
		if err != nil {
			return err
		}
		s.Records = append(s.Records, r)
	}
	return nil
}

// parseServed reads the presentation form of a record as a server served
// it: "<usage> <selector> <matching type> <hex>", each parameter 0–255 and
// the hex possibly split by spaces or absent (empty data). Unlike tlsa.Parse it does not judge the
// record (lengths, parameter ranges, digests of empty input): an observation
// records what was served, good or bad.
func parseServed(s string) (tlsa.Record, error) {
	f := strings.Fields(s)
	if len(f) < 3 { // "3 1 1" with no data is what String gives for empty data
		return tlsa.Record{}, fmt.Errorf("parse served record %q: want \"<usage> <selector> <matching type> <hex>\"", s)
	}
	var v [3]uint8
	for i := range v {
		n, err := strconv.ParseUint(f[i], 10, 8)
		if err != nil {
			return tlsa.Record{}, fmt.Errorf("parse served record %q: field %d: %w", s, i+1, err)
		}
		v[i] = uint8(n)
	}
	data, err := hex.DecodeString(strings.Join(f[3:], ""))
	if err != nil {
		return tlsa.Record{}, fmt.Errorf("parse served record %q: association data: %w", s, err)
	}
	return tlsa.Record{Usage: v[0], Selector: v[1], MatchingType: v[2], Data: data}, nil
}
