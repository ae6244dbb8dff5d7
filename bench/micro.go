package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// MicroResult is one line of `go test -bench` output.
type MicroResult struct {
	Package    string // import path
	Name       string // without the Benchmark prefix and the -GOMAXPROCS suffix: "Normalize/capture_event"
	Iterations int64
	Metrics    map[string]float64 // unit → value: "ns/op", "events/s", "x-vs-json" …
}

// Metric returns the value of unit, or false.
func (m MicroResult) Metric(unit string) (float64, bool) {
	v, ok := m.Metrics[unit]
	return v, ok
}

// BenchmarkPackages lists, as ./relative paths sorted, the packages under root whose tests
// hold a Benchmark function. Hidden directories, testdata, vendor and node_modules are skipped.
func BenchmarkPackages(root string) ([]string, error) {
	set := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") ||
				name == "testdata" || name == "vendor" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.HasPrefix(b, []byte("func Benchmark")) || bytes.Contains(b, []byte("\nfunc Benchmark")) {
			rel, err := filepath.Rel(root, filepath.Dir(path))
			if err != nil {
				return err
			}
			set["./"+filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench: find benchmarks: %w", err)
	}
	pkgs := make([]string, 0, len(set))
	for p := range set {
		pkgs = append(pkgs, strings.TrimSuffix(p, "/."))
	}
	sort.Strings(pkgs)
	return pkgs, nil
}

// RunMicro runs the Benchmark functions of pkgs (in root) count times each with benchtime, one
// package at a time (go test runs several at once by default, and on two cores each would
// measure the other's load), copying go test's output to out, and returns the medians of the
// results (Medians).
func RunMicro(ctx context.Context, root, benchtime string, count int, pkgs []string, out io.Writer) ([]MicroResult, error) {
	args := append([]string{"test", "-p", "1", "-run", "^$", "-bench", ".", "-benchmem",
		"-count", strconv.Itoa(max(count, 1)), "-benchtime", benchtime}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	var buf bytes.Buffer
	w := io.MultiWriter(&buf, out)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return Medians(ParseMicro(buf.String())), fmt.Errorf("bench: go %s: %w", strings.Join(args, " "), err)
	}
	return Medians(ParseMicro(buf.String())), nil
}

// Medians merges the results of the same benchmark (package and name), in first-seen order:
// each metric, and the iterations, is the median of its runs (the upper middle of an even
// number).
func Medians(results []MicroResult) []MicroResult {
	type key struct{ pkg, name string }
	var order []key
	runs := map[key][]MicroResult{}
	for _, r := range results {
		k := key{r.Package, r.Name}
		if _, seen := runs[k]; !seen {
			order = append(order, k)
		}
		runs[k] = append(runs[k], r)
	}
	out := make([]MicroResult, 0, len(order))
	for _, k := range order {
		rs := runs[k]
		m := MicroResult{Package: k.pkg, Name: k.name, Metrics: map[string]float64{}}
		iters := make([]float64, len(rs))
		for i, r := range rs {
			iters[i] = float64(r.Iterations)
		}
		m.Iterations = int64(medianOf(iters))
		for unit := range rs[0].Metrics {
			var vs []float64
			for _, r := range rs {
				if v, ok := r.Metrics[unit]; ok {
					vs = append(vs, v)
				}
			}
			m.Metrics[unit] = medianOf(vs)
		}
		out = append(out, m)
	}
	return out
}

func medianOf(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[len(s)/2]
}

// ParseMicro reads `go test -bench` output: "pkg:" lines name the package of the result lines
// after them; a result line is the benchmark name, the iterations, then value-unit pairs.
func ParseMicro(out string) []MicroResult {
	var (
		results []MicroResult
		pkg     string
	)
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue
		}
		iters, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		r := MicroResult{Package: pkg, Name: name, Iterations: iters, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			r.Metrics[f[i+1]] = v
		}
		results = append(results, r)
	}
	return results
}

// FindMicro returns the result whose package ends in pkgSuffix and whose name is name.
func FindMicro(results []MicroResult, pkgSuffix, name string) (MicroResult, bool) {
	for _, r := range results {
		if strings.HasSuffix(r.Package, pkgSuffix) && r.Name == name {
			return r, true
		}
	}
	return MicroResult{}, false
}
