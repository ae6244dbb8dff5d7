package posthog

import (
	"regexp"
	"testing"
	"time"
)

var uuidForm = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-([0-9a-f])[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewUUIDv7CarriesItsTimeAndVersion(t *testing.T) {
	at := time.Date(2025, 3, 14, 10, 15, 0, 123e6, time.UTC)
	a, b := NewUUIDv7(at), NewUUIDv7(at)
	m := uuidForm.FindStringSubmatch(a)
	if m == nil || m[1] != "7" {
		t.Fatalf("%q is not a version 7 UUID", a)
	}
	if a == b {
		t.Fatalf("two UUIDs for one time are equal: %q", a)
	}
	if got := a[0:8] + a[9:13]; got != "01959426691b" {
		t.Fatalf("time prefix %s, want the milliseconds of %s (01959426691b)", got, at)
	}
}

func TestDerivedUUIDIsStableVersion8(t *testing.T) {
	a, b := derivedUUID("phc_x", []byte(`{"event":"e"}`)), derivedUUID("phc_x", []byte(`{"event":"e"}`))
	if m := uuidForm.FindStringSubmatch(a); m == nil || m[1] != "8" || a != b {
		t.Fatalf("%q, %q: want one stable version 8 UUID", a, b)
	}
	if derivedUUID("phc_y", []byte(`{"event":"e"}`)) == a {
		t.Fatal("another token gave the same id")
	}
}
