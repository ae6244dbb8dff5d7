package redact

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestValueRedactsJSONLikeValues(t *testing.T) {
	r := New(DefaultConfig())
	var in map[string]any
	raw := `{
		"$current_url": "https://app.acme.dev/checkout?plan=pro&email=jane%40example.com",
		"$set": {"email": "jane.doe@example.com", "plan_selected": "pro"},
		"jane@example.com": "key that is an address",
		"$exception_list": [{"value": "Card 4242 4242 4242 4242 declined for +49 30 1234567"}],
		"$screen_width": 1728,
		"$time": 1741947302.118,
		"card_number": 4111111111111111,
		"is_identified": true,
		"missing": null,
		"amount": 49.00
	}`
	if err := json.Unmarshal([]byte(raw), &in); err != nil {
		t.Fatal(err)
	}
	before, _ := json.Marshal(in)
	got := r.Value(in)
	want := map[string]any{
		"$current_url":    "https://app.acme.dev/checkout?plan=pro",
		"$set":            map[string]any{"email": "[email]", "plan_selected": "pro"},
		"[email]":         "key that is an address",
		"$exception_list": []any{map[string]any{"value": "Card [card] declined for [phone]"}},
		"$screen_width":   1728.0,
		"$time":           1741947302.118,
		"card_number":     "[card]",
		"is_identified":   true,
		"missing":         nil,
		"amount":          49.0,
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		t.Fatalf("Value =\n%s", g)
	}
	if after, _ := json.Marshal(in); string(after) != string(before) {
		t.Fatalf("Value modified its input:\n%s\n%s", before, after)
	}
}

func TestValueOtherTypes(t *testing.T) {
	r := New(DefaultConfig())
	for _, tc := range []struct {
		name string
		in   any
		want any
	}{
		{"string slice", []string{"a@b.io", "ok"}, []string{"[email]", "ok"}},
		{"string map", map[string]string{"ip": "203.0.113.77"}, map[string]string{"ip": "[ip]"}},
		{"json number card", json.Number("378282246310005"), "[card]"},
		{"json number ordinary", json.Number("1182"), json.Number("1182")},
		{"int64 card", int64(4111111111111111), "[card]"},
		{"int card", 5555555555554444, "[card]"},
		{"uint64 card", uint64(6011111111111117), "[card]"},
		{"millisecond timestamp", int64(1741947302118), int64(1741947302118)},
		{"float timestamp", 1741947302118.0, 1741947302118.0},
		{"luhn invalid", int64(4111111111111112), int64(4111111111111112)},
		{"bool", false, false},
		{"nil", nil, nil},
		{"struct passes through", struct{ A int }{1}, struct{ A int }{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.Value(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Value(%#v) = %#v, want %#v", tc.in, got, tc.want)
			}
		})
	}
}
