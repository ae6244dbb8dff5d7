package tooltest

import "testing"

func TestNeedFindsProgramsAndAlternatives(t *testing.T) {
	paths := Need(t, "part of every system", "sh", "no-such-program-threadline|sh")
	if len(paths) != 2 || paths[0] == "" || paths[1] != paths[0] {
		t.Fatalf("paths = %q", paths)
	}
}
