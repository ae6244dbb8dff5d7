package schemas_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/threadline/threadline/schemas"
)

func newValidator(t testing.TB) *schemas.Validator {
	t.Helper()
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatalf("NewValidator: %v", err)
	}
	return v
}

// TestSchemaFilesMatchNames checks that the directory holds exactly one schema file per name (plus the
// shared definitions), that each file's $id, $schema, title and description are set, and that every
// schema has at least two examples and no examples exist for a schema that does not.
func TestSchemaFilesMatchNames(t *testing.T) {
	files, err := fs.Glob(schemas.FS(), "*.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, name := range schemas.Names() {
		want = append(want, schemas.FileName(name))
	}
	want = append(want, schemas.CommonFile)
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Fatalf("schema files = %v, want %v", files, want)
	}

	for _, file := range files {
		data, err := fs.ReadFile(schemas.FS(), file)
		if err != nil {
			t.Fatal(err)
		}
		var head struct {
			Schema      string `json:"$schema"`
			ID          string `json:"$id"`
			Title       string `json:"title"`
			Description string `json:"description"`
		}
		if err := json.Unmarshal(data, &head); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if head.Schema != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema = %q, want draft 2020-12", file, head.Schema)
		}
		if head.ID != schemas.BaseURI+file {
			t.Errorf("%s: $id = %q, want %q", file, head.ID, schemas.BaseURI+file)
		}
		if head.Title == "" || head.Description == "" {
			t.Errorf("%s: title and description must be set", file)
		}
	}

	dirs, err := fs.ReadDir(schemas.FS(), "examples")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !d.IsDir() || !slices.Contains(schemas.Names(), d.Name()) {
			t.Errorf("examples/%s belongs to no schema", d.Name())
		}
	}
	for _, name := range schemas.Names() {
		examples, err := schemas.Examples(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(examples) < 2 {
			t.Errorf("%s: %d examples, want at least 2", name, len(examples))
		}
	}
}

// TestEveryExampleValidates validates every example file against its schema.
func TestEveryExampleValidates(t *testing.T) {
	v := newValidator(t)
	total := 0
	for _, name := range schemas.Names() {
		examples, err := schemas.Examples(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range examples {
			total++
			if err := v.Validate(name, ex.Data); err != nil {
				t.Errorf("examples/%s/%s: %v", name, ex.Name, err)
			}
		}
	}
	if total < 2*len(schemas.Names()) {
		t.Fatalf("validated %d examples, want at least %d", total, 2*len(schemas.Names()))
	}
}

// TestSchemasAreStrictAndDescribed walks every compiled schema: each object closes its properties
// (additionalProperties false, or a schema for map values), every property has a description, each
// message requires a version that is the constant 1, and string properties are typed or constrained.
func TestSchemasAreStrictAndDescribed(t *testing.T) {
	v := newValidator(t)
	for _, name := range schemas.Names() {
		sch, err := v.Schema(name)
		if err != nil {
			t.Fatal(err)
		}
		if sch.Title == "" || sch.Description == "" {
			t.Errorf("%s: title and description must be set", name)
		}
		if !slices.Contains(sch.Required, "version") {
			t.Errorf("%s: version is not required", name)
		}
		version := sch.Properties["version"]
		if version == nil || version.Const == nil || !constEquals(*version.Const, 1) {
			t.Errorf("%s: version must be the constant 1", name)
		}
		seen := map[*jsonschema.Schema]bool{}
		walkObjects(sch, name, seen, func(loc string, obj *jsonschema.Schema) {
			if obj.AdditionalProperties == nil {
				t.Errorf("%s: object at %s does not set additionalProperties", name, loc)
			}
			for prop, ps := range obj.Properties {
				if ps.Description == "" {
					t.Errorf("%s: property %s.%s has no description", name, loc, prop)
				}
			}
			for _, req := range obj.Required {
				if obj.Properties[req] == nil {
					t.Errorf("%s: %s requires %q, which is not a property", name, loc, req)
				}
			}
		})
	}
}

func constEquals(v any, want int64) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	got, err := n.Int64()
	return err == nil && got == want
}

// walkObjects calls fn for every schema reachable from sch that declares properties.
func walkObjects(sch *jsonschema.Schema, loc string, seen map[*jsonschema.Schema]bool, fn func(string, *jsonschema.Schema)) {
	if sch == nil || seen[sch] {
		return
	}
	seen[sch] = true
	if sch.Ref != nil {
		walkObjects(sch.Ref, loc, seen, fn)
	}
	if len(sch.Properties) > 0 {
		fn(loc, sch)
	}
	for prop, ps := range sch.Properties {
		walkObjects(ps, loc+"."+prop, seen, fn)
	}
	if ap, ok := sch.AdditionalProperties.(*jsonschema.Schema); ok {
		walkObjects(ap, loc+".*", seen, fn)
	}
	walkObjects(sch.Items2020, loc+"[]", seen, fn)
	for _, sub := range slices.Concat(sch.AllOf, sch.AnyOf, sch.OneOf) {
		walkObjects(sub, loc, seen, fn)
	}
}

func TestValidateRejectsUnknownSchemaAndNonJSON(t *testing.T) {
	v := newValidator(t)
	if err := v.Validate("product.action", []byte(`{}`)); !errors.Is(err, schemas.ErrUnknownSchema) {
		t.Errorf("unknown schema: got %v, want ErrUnknownSchema", err)
	}
	if _, err := schemas.Examples("nope"); !errors.Is(err, schemas.ErrUnknownSchema) {
		t.Errorf("examples of unknown schema: got %v, want ErrUnknownSchema", err)
	}
	examples, err := schemas.Examples(schemas.ProductActions)
	if err != nil {
		t.Fatal(err)
	}
	valid := examples[0].Data
	for name, data := range map[string][]byte{
		"empty":          nil,
		"truncated":      valid[:len(valid)/2],
		"trailing value": append(append([]byte{}, valid...), []byte(` {}`)...),
		"array":          []byte(`[` + string(valid) + `]`),
		"string":         []byte(`"product.actions"`),
		"empty object":   []byte(`{}`),
		"null":           []byte(`null`),
		"yaml":           []byte(`version: 1`),
	} {
		if err := v.Validate(schemas.ProductActions, data); !errors.Is(err, schemas.ErrInvalidMessage) {
			t.Errorf("%s: got %v, want ErrInvalidMessage", name, err)
		}
	}
}

// mutate decodes an example, applies change to it, and encodes it again.
func mutate(t *testing.T, data []byte, change func(m map[string]any)) []byte {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data)) // keeps numbers exact
	if err != nil {
		t.Fatal(err)
	}
	m := doc.(map[string]any)
	change(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func example(t *testing.T, name, file string) []byte {
	t.Helper()
	examples, err := schemas.Examples(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range examples {
		if ex.Name == file {
			return ex.Data
		}
	}
	t.Fatalf("no example %s/%s", name, file)
	return nil
}

// failsWith reports whether err holds a validation error whose keyword path ends in keyword.
func failsWith(err error, keyword string) bool {
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return false
	}
	var walk func(*jsonschema.ValidationError) bool
	walk = func(e *jsonschema.ValidationError) bool {
		if _, ok := e.ErrorKind.(*kind.Not); ok && keyword == "not" {
			return true // kind.Not reports no keyword path
		}
		if kp := e.ErrorKind.KeywordPath(); len(kp) > 0 && kp[len(kp)-1] == keyword {
			return true
		}
		return slices.ContainsFunc(e.Causes, walk)
	}
	return walk(verr)
}

// TestIntercomEventRules covers the intercom.events contract, which has no Go type yet: Intercom's
// limits on metadata, Unix seconds, and an identifier that is never a raw email.
func TestIntercomEventRules(t *testing.T) {
	v := newValidator(t)
	base := example(t, schemas.IntercomEvents, "checkout_error.json")
	metadata := func(m map[string]any) map[string]any { return m["metadata"].(map[string]any) }

	accepted := map[string]func(map[string]any){
		"identified by contact id only": func(m map[string]any) {
			delete(m, "user_id")
			m["intercom_user_id"] = "66f1c0d2e4b0a91f3c2d7e10"
		},
		"identified by email hash only": func(m map[string]any) {
			delete(m, "user_id")
			m["email_hash"] = "h:86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d"
		},
		"ten metadata keys": func(m map[string]any) {
			md := metadata(m)
			for i := len(md); i < 10; i++ {
				md[string(rune('a'+i))+"_key"] = float64(i)
			}
		},
		"metadata string of 255 characters": func(m map[string]any) { metadata(m)["note"] = strings.Repeat("x", 255) },
		"fractional number":                 func(m map[string]any) { metadata(m)["ratio"] = 0.25 },
		"no metadata":                       func(m map[string]any) { delete(m, "metadata") },
	}
	for name, change := range accepted {
		if err := v.Validate(schemas.IntercomEvents, mutate(t, base, change)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	rejected := map[string]struct {
		change  func(map[string]any)
		keyword string
	}{
		"eleven metadata keys": {func(m map[string]any) {
			md := metadata(m)
			for i := len(md); i < 11; i++ {
				md[string(rune('a'+i))+"_key"] = "v"
			}
		}, "maxProperties"},
		"nested metadata object": {func(m map[string]any) {
			metadata(m)["price"] = map[string]any{"amount": 4900, "currency": "usd"}
		}, "oneOf"},
		"metadata array":              {func(m map[string]any) { metadata(m)["plans"] = []any{"pro", "team"} }, "oneOf"},
		"metadata boolean":            {func(m map[string]any) { metadata(m)["retry"] = true }, "oneOf"},
		"metadata string too long":    {func(m map[string]any) { metadata(m)["note"] = strings.Repeat("x", 256) }, "oneOf"},
		"metadata key with a dot":     {func(m map[string]any) { metadata(m)["card.brand"] = "visa" }, "pattern"},
		"metadata key with a dollar":  {func(m map[string]any) { metadata(m)["$browser"] = "Chrome" }, "pattern"},
		"empty metadata":              {func(m map[string]any) { m["metadata"] = map[string]any{} }, "minProperties"},
		"created_at in milliseconds":  {func(m map[string]any) { m["created_at"] = 1741947332292 }, "maximum"},
		"created_at as a date string": {func(m map[string]any) { m["created_at"] = "2025-03-14T10:15:32Z" }, "type"},
		"no identifier":               {func(m map[string]any) { delete(m, "user_id") }, "anyOf"},
		"raw email as user_id":        {func(m map[string]any) { m["user_id"] = "shopper@example.com" }, "pattern"},
		"unhashed email_hash":         {func(m map[string]any) { m["email_hash"] = "shopper@example.com" }, "pattern"},
		"no rule":                     {func(m map[string]any) { delete(m, "rule") }, "required"},
		"no action id":                {func(m map[string]any) { delete(m, "action_id") }, "required"},
		"unknown field":               {func(m map[string]any) { m["email"] = "shopper@example.com" }, "additionalProperties"},
		"version 2":                   {func(m map[string]any) { m["version"] = 2 }, "const"},
	}
	for name, tc := range rejected {
		err := v.Validate(schemas.IntercomEvents, mutate(t, base, tc.change))
		if !errors.Is(err, schemas.ErrInvalidMessage) || !failsWith(err, tc.keyword) {
			t.Errorf("%s: got %v, want a %q failure", name, err, tc.keyword)
		}
	}
}

// TestConditionalRules covers the rules that depend on a message's type or kind.
func TestConditionalRules(t *testing.T) {
	v := newValidator(t)
	cases := []struct {
		name, schema, file string
		change             func(map[string]any)
		keyword            string // "" means the change is valid
	}{
		{"merge without merged_from_id", schemas.ConversationEvents, "contact_merged.json",
			func(m map[string]any) { delete(m, "merged_from_id") }, "required"},
		{"merged_from_id on a reply", schemas.ConversationEvents, "replied.json",
			func(m map[string]any) { m["merged_from_id"] = "66f1bf7ae4b0a91f3c2d6b02" }, "not"},
		{"contact attached without contact", schemas.ConversationEvents, "closed_without_notification_id.json",
			func(m map[string]any) { m["type"] = "contact_attached" }, "required"},
		{"contact detached with contact", schemas.ConversationEvents, "replied.json",
			func(m map[string]any) { m["type"] = "contact_detached" }, ""},
		{"reply without a conversation", schemas.ConversationEvents, "replied.json",
			func(m map[string]any) { m["conversation_id"] = "" }, "minLength"},
		{"merge naming a conversation", schemas.ConversationEvents, "contact_merged.json",
			func(m map[string]any) { m["conversation_id"] = "215471883220312" }, ""},
		{"summary replacing none", schemas.ConversationSummaries, "narrative.json",
			func(m map[string]any) { m["replaces_parts"] = []any{} }, ""},
		{"start url with a query string", schemas.ConversationEvents, "created.json",
			func(m map[string]any) { m["start_url"] = "https://app.acme.dev/settings/billing?sid=web_7f3a" }, "pattern"},
		{"start url that is no URL", schemas.ConversationEvents, "created.json",
			func(m map[string]any) { m["start_url"] = "settings billing" }, "format"},
		{"unknown role", schemas.ConversationEvents, "created.json",
			func(m map[string]any) { m["role"] = "visitor" }, "enum"},
		{"actions note without lines", schemas.NotesWritten, "live_actions_note.json",
			func(m map[string]any) { delete(m, "lines") }, "required"},
		{"actions note naming a summary", schemas.NotesWritten, "live_actions_note.json",
			func(m map[string]any) { m["summary_id"] = "sum_215471883220312_19" }, "not"},
		{"summary note without summary id", schemas.NotesWritten, "summary_note.json",
			func(m map[string]any) { delete(m, "summary_id") }, "required"},
		{"summary note with lines", schemas.NotesWritten, "summary_note.json",
			func(m map[string]any) {
				m["lines"] = mustNoteLines(t, example(t, schemas.NotesWritten, "live_actions_note.json"))
			}, "not"},
		{"pre_conversation written as false", schemas.NotesWritten, "live_actions_note.json",
			func(m map[string]any) { m["pre_conversation"] = false }, "const"},
		{"line numbered zero", schemas.NotesWritten, "live_actions_note.json",
			func(m map[string]any) { m["lines"].([]any)[0].(map[string]any)["seq"] = 0 }, "minimum"},
		{"path with a query string", schemas.ConversationActions, "live_action.json",
			func(m map[string]any) {
				m["actions"].([]any)[0].(map[string]any)["path"] = "/settings/billing?card=4242424242424242"
			}, "pattern"},
		{"server-side session", schemas.ConversationActions, "live_action.json",
			func(m map[string]any) {
				m["session_id"] = "user:usr_2Qm8xK4p"
				m["actions"].([]any)[0].(map[string]any)["session_id"] = "user:usr_2Qm8xK4p"
			}, ""},
		{"session id holding an email", schemas.ConversationActions, "live_action.json",
			func(m map[string]any) { m["session_id"] = "user:shopper@example.com" }, "pattern"},
		{"no actions", schemas.ConversationActions, "live_action.json",
			func(m map[string]any) { m["actions"] = []any{} }, "minItems"},
		{"dead letter value not base64", schemas.DeadLetters, "ingest_decode.json",
			func(m map[string]any) { m["value"] = "{not base64}" }, "contentEncoding"},
		{"negative offset", schemas.DeadLetters, "ingest_decode.json",
			func(m map[string]any) { m["offset"] = -1 }, "minimum"},
		{"summary with no replaced parts as null", schemas.ConversationSummaries, "llm_folds_previous.json",
			func(m map[string]any) { m["replaces_parts"] = nil }, ""},
		{"summary replacing a part twice", schemas.ConversationSummaries, "narrative.json",
			func(m map[string]any) { m["replaces_parts"] = []any{"31822745", "31822745"} }, "uniqueItems"},
	}
	for _, tc := range cases {
		err := v.Validate(tc.schema, mutate(t, example(t, tc.schema, tc.file), tc.change))
		switch {
		case tc.keyword == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.keyword != "" && !failsWith(err, tc.keyword):
			t.Errorf("%s: got %v, want a %q failure", tc.name, err, tc.keyword)
		}
	}
}

func mustNoteLines(t *testing.T, note []byte) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(note, &m); err != nil {
		t.Fatal(err)
	}
	return m["lines"]
}

// TestValidatorConcurrentUse validates from many goroutines at once (run with -race).
func TestValidatorConcurrentUse(t *testing.T) {
	v := newValidator(t)
	var all [][2]string
	for _, name := range schemas.Names() {
		examples, err := schemas.Examples(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range examples {
			all = append(all, [2]string{name, string(ex.Data)})
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*len(all))
	for range 8 {
		wg.Go(func() {
			for _, ex := range all {
				errs <- v.Validate(ex[0], []byte(ex[1]))
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		n++
		if err != nil {
			t.Error(err)
		}
	}
	if n != 8*len(all) {
		t.Fatalf("got %d results, want %d", n, 8*len(all))
	}
}

func BenchmarkValidateConversationActionsBatch(b *testing.B) {
	v := newValidator(b)
	examples, err := schemas.Examples(schemas.ConversationActions)
	if err != nil {
		b.Fatal(err)
	}
	var batch []byte
	for _, ex := range examples {
		if len(ex.Data) > len(batch) {
			batch = ex.Data
		}
	}
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		if err := v.Validate(schemas.ConversationActions, batch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewValidator(b *testing.B) {
	for b.Loop() {
		if _, err := schemas.NewValidator(); err != nil {
			b.Fatal(err)
		}
	}
}
