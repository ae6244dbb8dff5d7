package bench

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Markers around the results table in README.md; `make bench` replaces what lies between them.
const (
	ReadmeBegin = "<!-- bench:begin -->"
	ReadmeEnd   = "<!-- bench:end -->"
)

// ErrReadmeMarkers is returned by ReplaceReadmeTable when the document lacks the markers, or has
// them out of order or more than once.
var ErrReadmeMarkers = errors.New("bench: README needs exactly one " + ReadmeBegin + " line followed by one " + ReadmeEnd + " line")

// ReplaceReadmeTable returns doc with everything between the markers replaced by section; the
// markers and the rest of doc stay as they are.
func ReplaceReadmeTable(doc, section string) (string, error) {
	if strings.Count(doc, ReadmeBegin) != 1 || strings.Count(doc, ReadmeEnd) != 1 {
		return "", ErrReadmeMarkers
	}
	begin := strings.Index(doc, ReadmeBegin) + len(ReadmeBegin)
	end := strings.Index(doc, ReadmeEnd)
	if end < begin {
		return "", ErrReadmeMarkers
	}
	section = strings.Trim(section, "\n")
	return doc[:begin] + "\n" + section + "\n" + doc[end:], nil
}

// WriteReadmeSection writes what README.md shows between the markers: when and where the run
// happened, and the main table.
func (r *Results) WriteReadmeSection(w io.Writer) {
	fmt.Fprintln(w, "Written by `make bench`; do not edit by hand. "+r.machineLine())
	fmt.Fprintln(w)
	WriteTable(w, r.PipelineRows())
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The full report, with the stages, profiles and package benchmarks, is [bench/RESULTS.md](bench/RESULTS.md).")
}
