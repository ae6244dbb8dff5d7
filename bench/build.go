package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/threadline/threadline/pkg/stack"
)

// PprofAddrEnv names the address the benchmark's build of a binary serves net/http/pprof on.
const PprofAddrEnv = "THREADLINE_BENCH_PPROF_ADDR"

// pprofSource is added to each binary's package main, through go build -overlay, in the
// benchmark's own build only: the binaries in the repository stay as they are (their admin
// server has no pprof endpoint). It serves /debug/pprof/ on PprofAddrEnv when that is set.
const pprofSource = `package main

import (
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

func init() {
	addr := os.Getenv("` + PprofAddrEnv + `")
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	go func() { _ = http.Serve(ln, mux) }()
}
`

// overlayFile is the name the pprof listener takes in each service's directory.
const overlayFile = "zz_bench_pprof.go"

// BuildBinaries compiles the four services into dir; with pprof, each also gets the listener of
// pprofSource, added through a build overlay written to dir.
func BuildBinaries(ctx context.Context, dir string, pprof bool) error {
	root, err := stack.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	return build(ctx, root, dir, stack.Services, pprof)
}

// build compiles the main packages in pkgDirs (relative to root) into dir, with the pprof
// listener overlaid on each when pprof is set.
func build(ctx context.Context, root, dir string, pkgDirs []string, pprof bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: build: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("bench: build: %w", err)
	}
	args := []string{"build"}
	if pprof {
		src := filepath.Join(abs, "pprof_overlay.go.txt")
		if err := os.WriteFile(src, []byte(pprofSource), 0o644); err != nil {
			return fmt.Errorf("bench: build: %w", err)
		}
		replace := map[string]string{}
		for _, d := range pkgDirs {
			replace[filepath.Join(root, d, overlayFile)] = src
		}
		overlay, err := json.Marshal(map[string]any{"Replace": replace})
		if err != nil {
			return fmt.Errorf("bench: build: %w", err)
		}
		overlayPath := filepath.Join(abs, "overlay.json")
		if err := os.WriteFile(overlayPath, overlay, 0o644); err != nil {
			return fmt.Errorf("bench: build: %w", err)
		}
		args = append(args, "-overlay", overlayPath)
	}
	args = append(args, "-o", abs+string(os.PathSeparator))
	for _, d := range pkgDirs {
		args = append(args, "./"+d)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bench: go %v: %w\n%s", args, err, out)
	}
	return nil
}
