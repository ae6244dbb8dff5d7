package posthog

import (
	"testing"
)

// exceptionByGet is what Event.Exception reads from $exception_list, read by decoding the list.
func exceptionByGet(p Properties) (typ, msg string) {
	if v, ok := p.Get("$exception_list"); ok {
		if list, ok := v.([]any); ok && len(list) > 0 {
			if first, ok := list[0].(map[string]any); ok {
				typ, _ = first["type"].(string)
				msg, _ = first["value"].(string)
			}
		}
	}
	return typ, msg
}

var exceptionLists = []string{
	`[{"type":"CardValidationError","value":"declined","stacktrace":{"frames":[{"lineno":1,"colno":48213}]}}]`,
	`[{"type":"A","value":"m","type":"B","value":2}]`, `[{"typ\u0065":"E","value":"m\u00e9"}]`,
	`[{"type":"A","value":"m"},{"n":1e400}]`, `[{"type":"A","n":-1e309}]`, `[{"type":"A","n":1e-400}]`,
	`[{"type":1,"value":null}]`, `["A"]`, `[]`, `{"type":"A"}`, `"A"`, `null`, `[[{"type":"A"}]]`,
	`[ {"value" : "m" , "type" : "T"} , 3 ]`, `[{"type":"A","value":"m","x":123456789012345678901234567890}]`,
}

// TestException checks that Exception reads the first entry of the list as decoding it would.
func TestException(t *testing.T) {
	for _, list := range exceptionLists {
		checkException(t, list)
	}
	ev := Event{Properties: propertiesOf(t, `{"$exception_type":"T","$exception_message":"m","$exception_types":["U"]}`)}
	if typ, msg := ev.Exception(); typ != "T" || msg != "m" {
		t.Errorf("without a list: %q %q", typ, msg)
	}
	ev = Event{Properties: propertiesOf(t, `{"$exception_list":[{"value":"m"}],"$exception_types":["U"]}`)}
	if typ, msg := ev.Exception(); typ != "U" || msg != "m" {
		t.Errorf("type from the types: %q %q", typ, msg)
	}
}

func checkException(t *testing.T, list string) {
	t.Helper()
	p, ok := indexedProperties(`{"$exception_list":` + list + `}`)
	if !ok {
		return
	}
	ev := Event{Properties: p}
	wantTyp, wantMsg := exceptionByGet(p)
	if typ, msg := ev.Exception(); typ != wantTyp || msg != wantMsg {
		t.Fatalf("%s: %q %q, want %q %q", list, typ, msg, wantTyp, wantMsg)
	}
}

func FuzzException(f *testing.F) {
	for _, list := range exceptionLists {
		f.Add(list)
	}
	f.Fuzz(checkException)
}

func propertiesOf(t *testing.T, obj string) Properties {
	t.Helper()
	p, ok := indexedProperties(obj)
	if !ok {
		t.Fatalf("not an object: %s", obj)
	}
	return p
}

// indexedProperties indexes the JSON object obj, and reports whether it is a valid one.
func indexedProperties(obj string) (Properties, bool) {
	var s scratch
	buf := []byte(obj)
	b, err := s.indexObject(buf)
	if err != nil {
		return Properties{}, false
	}
	return s.properties(0, b), true
}
