package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Profile kinds.
const (
	ProfileCPU    = "cpu"
	ProfileAllocs = "allocs"
)

// Profile is one profile of a service, and its top functions.
type Profile struct {
	Service string
	Kind    string // ProfileCPU or ProfileAllocs
	Stage   string // what the service was doing
	Path    string
	Top     []TopEntry
	Total   string // pprof's total line: "Showing nodes accounting for …"
}

// TopEntry is one line of `go tool pprof -top`.
type TopEntry struct {
	Flat, FlatPct, Cum, CumPct string
	Function                   string
}

// FetchProfile saves http://addr/debug/pprof/<path> to file, retrying until the listener answers
// (the service may still be starting) or ctx ends.
func FetchProfile(ctx context.Context, addr, path, file string) error {
	url := "http://" + addr + "/debug/pprof/" + path
	for {
		err := fetchOnce(ctx, url, file)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: profile %s: %w (last: %w)", url, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func fetchOnce(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Summarize fills p.Top with the n heaviest functions of the profile at p.Path (by flat CPU
// time, or by allocated bytes for allocation profiles), with `go tool pprof -top`.
func Summarize(ctx context.Context, p *Profile, n int) error {
	args := []string{"tool", "pprof", "-top", fmt.Sprintf("-nodecount=%d", n)}
	if p.Kind == ProfileAllocs {
		args = append(args, "-sample_index=alloc_space")
	}
	out, err := exec.CommandContext(ctx, "go", append(args, p.Path)...).Output()
	if err != nil {
		return fmt.Errorf("bench: go tool pprof %s: %w", p.Path, err)
	}
	p.Total, p.Top = ParsePprofTop(string(out))
	return nil
}

// ParsePprofTop reads the output of `go tool pprof -top`: the "Showing nodes accounting for"
// line and the table after the "flat  flat%   sum%        cum   cum%" header.
func ParsePprofTop(out string) (total string, top []TopEntry) {
	inTable := false
	for _, line := range strings.Split(out, "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "Showing nodes accounting for"):
			total = t
		case strings.HasPrefix(t, "flat") && strings.Contains(t, "cum%"):
			inTable = true
		case inTable && t != "":
			f := strings.Fields(t)
			if len(f) < 6 {
				continue
			}
			top = append(top, TopEntry{Flat: f[0], FlatPct: f[1], Cum: f[3], CumPct: f[4], Function: strings.Join(f[5:], " ")})
		}
	}
	return total, top
}
