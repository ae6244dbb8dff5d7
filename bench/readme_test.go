package bench

import (
	"errors"
	"strings"
	"testing"
)

func TestReplaceReadmeTable(t *testing.T) {
	doc := "# Title\n\nIntro.\n\n" + ReadmeBegin + "\nold table\n| a | b |\n" + ReadmeEnd + "\n\n## Next\n"
	got, err := ReplaceReadmeTable(doc, "\nnew line\n| c | d |\n\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Title\n\nIntro.\n\n" + ReadmeBegin + "\nnew line\n| c | d |\n" + ReadmeEnd + "\n\n## Next\n"
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	// Replacing again gives the same document: the previous table is gone, not kept.
	again, err := ReplaceReadmeTable(got, "new line\n| c | d |")
	if err != nil || again != want {
		t.Fatalf("second replacement: %v\n%q", err, again)
	}
}

func TestReplaceReadmeTableNeedsMarkers(t *testing.T) {
	for name, doc := range map[string]string{
		"none":     "# Title\n",
		"no end":   ReadmeBegin + "\n",
		"reversed": ReadmeEnd + "\n" + ReadmeBegin + "\n",
		"twice":    ReadmeBegin + ReadmeEnd + ReadmeBegin + ReadmeEnd,
	} {
		if _, err := ReplaceReadmeTable(doc, "x"); !errors.Is(err, ErrReadmeMarkers) {
			t.Errorf("%s: err %v, want ErrReadmeMarkers", name, err)
		}
	}
}

func TestReadmeSectionHasMachineAndTable(t *testing.T) {
	r := sampleResults()
	var sb strings.Builder
	r.WriteReadmeSection(&sb)
	out := sb.String()
	for _, want := range []string{r.Machine.CPUModel, r.Machine.GoVersion, "| Figure | Measured |", "bench/RESULTS.md"} {
		if !strings.Contains(out, want) {
			t.Errorf("section lacks %q:\n%s", want, out)
		}
	}
	doc, err := ReplaceReadmeTable("a\n"+ReadmeBegin+"\n"+ReadmeEnd+"\nb\n", out)
	if err != nil || !strings.HasPrefix(doc, "a\n"+ReadmeBegin+"\n") || !strings.HasSuffix(doc, ReadmeEnd+"\nb\n") {
		t.Fatalf("rewrite: %v\n%s", err, doc)
	}
}
