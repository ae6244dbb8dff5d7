package messages_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/schemas"
)

// contract ties a Go message type to its schema, with values of the type built in Go.
type contract struct {
	schema string
	goType reflect.Type
	// populated values together set every field of the type, nested ones included.
	populated []any
	// minimal sets only the fields the Go encoding always writes.
	minimal any
	// strictDecode decodes into the Go type, refusing unknown fields and trailing data.
	strictDecode func([]byte) (any, error)
	// decode decodes with messages.Decode.
	decode func([]byte) (messages.Versioned, error)
}

func contractFor[T messages.Versioned](schema string, populated []T, minimal T) contract {
	c := contract{
		schema:  schema,
		goType:  reflect.TypeFor[T](),
		minimal: minimal,
		strictDecode: func(data []byte) (any, error) {
			var v T
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&v); err != nil {
				return nil, err
			}
			if _, err := dec.Token(); err != io.EOF {
				return nil, errors.New("trailing data after the message")
			}
			return v, nil
		},
		decode: func(data []byte) (messages.Versioned, error) {
			var v T
			err := messages.Decode(data, &v)
			return v, err
		},
	}
	for _, p := range populated {
		c.populated = append(c.populated, p)
	}
	return c
}

const (
	sessionID      = "01959426-703f-7f3a-b1ec-ebbd1410ab41"
	anonDistinctID = "01959426-703e-763a-8dbe-41488fb87214"
	userID         = "usr_2Qm8xK4p"
	emailHash      = "h:86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d"
	conversationID = "215471883220312"
	workspaceID    = "ab12cd34"
	contactID      = "66f1c0d2e4b0a91f3c2d7e10"
)

var journeyStart = time.Date(2025, 3, 14, 10, 15, 2, 203_000_000, time.UTC)

func fullAction() messages.Action {
	return messages.Action{
		ActionID:  "01959426-e66f-770e-9a29-c4be040e1890",
		SessionID: sessionID,
		EventTime: journeyStart.Add(30089 * time.Millisecond),
		Event:     "payment_validation_failed",
		Kind:      messages.KindError,
		Page:      "checkout",
		Path:      "/checkout",
		Target:    "Pay $49.00 button",
		Detail:    "card validation failed",
		Text:      "User hit an error on the checkout page: card validation failed",
	}
}

func minimalAction() messages.Action {
	return messages.Action{
		ActionID:  "01959426-e41c-7e15-a51f-4a5b91b6854e",
		SessionID: sessionID,
		EventTime: journeyStart.Add(29494 * time.Millisecond),
		Event:     "$identify",
		Kind:      messages.KindIdentify,
		Text:      "User identified as usr_2Qm8xK4p",
	}
}

func contracts() []contract {
	linkedAt := journeyStart.Add(61797 * time.Millisecond)
	return []contract{
		contractFor(schemas.ProductActions,
			[]messages.ProductAction{{
				Version: messages.Version,
				Action:  fullAction(),
				Identity: messages.Identity{
					DistinctID:     userID,
					AnonDistinctID: anonDistinctID,
					UserID:         userID,
					EmailHash:      emailHash,
					IntercomUserID: contactID,
				},
				Properties: map[string]string{"plan": "pro", "error_code": "incorrect_number"},
			}},
			messages.ProductAction{
				Version:  messages.Version,
				Action:   minimalAction(),
				Identity: messages.Identity{DistinctID: anonDistinctID},
			}),
		contractFor(schemas.ConversationEvents,
			[]messages.ConversationEvent{{
				Version:        messages.Version,
				EventID:        "notif_c41f8e02-3b7a-4d95-a6e1-0f2b9d7c5a83",
				Type:           messages.ConvContactMerged,
				WorkspaceID:    workspaceID,
				ConversationID: conversationID,
				ContactID:      contactID,
				ExternalID:     userID,
				EmailHash:      emailHash,
				Role:           "user",
				SessionHint:    sessionID,
				StartURL:       "https://app.acme.dev/settings/billing",
				MergedFromID:   "66f1bf7ae4b0a91f3c2d6b02",
				OccurredAt:     linkedAt,
			}},
			messages.ConversationEvent{
				Version:        messages.Version,
				EventID:        "notif_0d6e2b41-8f3a-4c17-9e25-b7a1c0f4d863",
				Type:           messages.ConvDeleted,
				ConversationID: conversationID,
				OccurredAt:     linkedAt.Add(time.Hour),
			}),
		contractFor(schemas.ConversationActions,
			[]messages.ConversationActions{{
				Version:         messages.Version,
				ConversationID:  conversationID,
				WorkspaceID:     workspaceID,
				SessionID:       sessionID,
				PreConversation: true,
				Actions:         []messages.Action{minimalAction(), fullAction()},
			}},
			messages.ConversationActions{
				Version:        messages.Version,
				ConversationID: conversationID,
				SessionID:      sessionID,
				Actions:        []messages.Action{minimalAction()},
			}),
		contractFor(schemas.NotesWritten,
			[]messages.NoteWritten{
				{
					Version:         messages.Version,
					ConversationID:  conversationID,
					WorkspaceID:     workspaceID,
					PartID:          "31822745",
					Ref:             "tl-ref-5e1c9a2f7b3d",
					Kind:            messages.NoteActions,
					PreConversation: true,
					Lines:           []messages.NoteLine{{Seq: 7, Action: minimalAction()}, {Seq: 8, Action: fullAction()}},
					WrittenAt:       linkedAt.Add(1412 * time.Millisecond),
				},
				{
					Version:        messages.Version,
					ConversationID: conversationID,
					WorkspaceID:    workspaceID,
					PartID:         "31822790",
					Ref:            "tl-ref-0c7f3b9e5d21",
					Kind:           messages.NoteSummary,
					SummaryID:      "sum_" + conversationID + "_19",
					WrittenAt:      linkedAt.Add(37 * time.Second),
				},
			},
			messages.NoteWritten{
				Version:        messages.Version,
				ConversationID: conversationID,
				PartID:         "31822761",
				Ref:            "tl-ref-a8d04e6b1c92",
				Kind:           messages.NoteActions,
				Lines:          []messages.NoteLine{{Seq: 18, Action: minimalAction()}},
				WrittenAt:      linkedAt.Add(31 * time.Second),
			}),
		contractFor(schemas.ConversationSummaries,
			[]messages.ConversationSummary{{
				Version:        messages.Version,
				SummaryID:      "sum_" + conversationID + "_19",
				ConversationID: conversationID,
				WorkspaceID:    workspaceID,
				Text:           "The user navigated to the pricing page, selected the Pro plan, submitted the checkout form, and hit a payment validation error.",
				FromSeq:        1,
				ToSeq:          19,
				ActionCount:    19,
				ReplacesParts:  []string{"31822745", "31822761"},
				Engine:         "narrative",
				CreatedAt:      linkedAt.Add(36 * time.Second),
			}},
			messages.ConversationSummary{
				Version:        messages.Version,
				SummaryID:      "sum_" + conversationID + "_39",
				ConversationID: conversationID,
				Text:           "The user retried the payment from billing settings with a second card, which was accepted.",
				FromSeq:        20,
				ToSeq:          39,
				ActionCount:    20,
				Engine:         "llm",
				CreatedAt:      linkedAt.Add(6 * time.Minute),
			}),
		contractFor(schemas.DeadLetters,
			[]messages.DeadLetter{{
				Version:     messages.Version,
				Service:     "linker",
				SourceTopic: "product.actions",
				Partition:   2147483647,
				Offset:      9223372036854775807,
				Reason:      "unsupported_version",
				Error:       "decode messages.ProductAction: unsupported version 2 (want 1)",
				Key:         []byte(sessionID),
				Value:       []byte{0x00, 0xff, '{', '"', 'v', '"', ':', '2', '}'},
				FailedAt:    journeyStart.Add(8 * time.Second),
			}},
			messages.DeadLetter{
				Version:     messages.Version,
				Service:     "ingest",
				SourceTopic: "posthog.events.raw",
				Reason:      "decode",
				Error:       "decode posthog event: unexpected end of JSON input",
				FailedAt:    journeyStart,
			}),
		contractFor(schemas.IntercomEvents,
			[]messages.IntercomEvent{{
				Version:        messages.Version,
				EventName:      "hit-checkout-error",
				CreatedAt:      journeyStart.Add(30089 * time.Millisecond).Unix(),
				UserID:         userID,
				IntercomUserID: contactID,
				EmailHash:      emailHash,
				WorkspaceID:    workspaceID,
				Metadata:       map[string]any{"plan": "pro", "amount_cents": 4900, "failed_date": journeyStart.Unix()},
				Rule:           "checkout-payment-error",
				ActionID:       "01959426-e66f-770e-9a29-c4be040e1890",
			}},
			messages.IntercomEvent{
				Version:   messages.Version,
				EventName: "dead-clicked-update-payment",
				CreatedAt: journeyStart.Add(47204 * time.Millisecond).Unix(),
				UserID:    userID,
				Rule:      "dead-click-on-billing",
				ActionID:  "01959427-294a-7036-bcd5-ff633d367fba",
			}),
	}
}

func newValidator(t testing.TB) *schemas.Validator {
	t.Helper()
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatalf("NewValidator: %v", err)
	}
	return v
}

func examplesOf(t testing.TB, name string) []schemas.Example {
	t.Helper()
	examples, err := schemas.Examples(name)
	if err != nil {
		t.Fatal(err)
	}
	return examples
}

// parseJSON decodes JSON the way the validator sees it (numbers kept exact).
func parseJSON(t testing.TB, data []byte) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse %s: %v", data, err)
	}
	return v
}

func TestEveryExampleValidatesAgainstItsSchema(t *testing.T) {
	v := newValidator(t)
	for _, c := range contracts() {
		for _, ex := range examplesOf(t, c.schema) {
			if err := v.Validate(c.schema, ex.Data); err != nil {
				t.Errorf("examples/%s/%s: %v", c.schema, ex.Name, err)
			}
		}
	}
}

// TestExamplesRoundTripThroughGoTypes decodes every example into its Go type, refusing unknown
// fields, encodes it again, and checks the result still validates and says exactly what the example
// said: the examples are what the Go code writes.
func TestExamplesRoundTripThroughGoTypes(t *testing.T) {
	v := newValidator(t)
	for _, c := range contracts() {
		for _, ex := range examplesOf(t, c.schema) {
			decoded, err := c.strictDecode(ex.Data)
			if err != nil {
				t.Errorf("examples/%s/%s: decode into %s: %v", c.schema, ex.Name, c.goType, err)
				continue
			}
			encoded, err := json.Marshal(decoded)
			if err != nil {
				t.Fatalf("examples/%s/%s: encode: %v", c.schema, ex.Name, err)
			}
			if err := v.Validate(c.schema, encoded); err != nil {
				t.Errorf("examples/%s/%s: re-encoded message: %v", c.schema, ex.Name, err)
			}
			if want, got := parseJSON(t, ex.Data), parseJSON(t, encoded); !reflect.DeepEqual(want, got) {
				t.Errorf("examples/%s/%s: re-encoded message differs\n got: %s\nwant: %s", c.schema, ex.Name, encoded, ex.Data)
			}
		}
	}
}

// TestGoValuesValidate encodes values built in Go, fully populated and minimal, and validates them.
func TestGoValuesValidate(t *testing.T) {
	v := newValidator(t)
	for _, c := range contracts() {
		sch, err := v.Schema(c.schema)
		if err != nil {
			t.Fatal(err)
		}
		for i, value := range append(slices.Clone(c.populated), c.minimal) {
			data, err := json.Marshal(value)
			if err != nil {
				t.Fatalf("%s value %d: encode: %v", c.goType, i, err)
			}
			if err := v.Validate(c.schema, data); err != nil {
				t.Errorf("%s value %d: %v\n%s", c.goType, i, err, data)
			}
			back, err := c.strictDecode(data)
			if err != nil {
				t.Errorf("%s value %d: decode what Go encoded: %v", c.goType, i, err)
			} else if !equalAsJSON(t, back, value) {
				t.Errorf("%s value %d: decoded value differs: %+v", c.goType, i, back)
			}
		}

		// The minimal value writes the properties the schema requires, and anything more it writes is
		// required by a conditional rule (such as lines on an actions note): nothing can be left out.
		data, err := json.Marshal(c.minimal)
		if err != nil {
			t.Fatal(err)
		}
		written := parseJSON(t, data).(map[string]any)
		for _, req := range sch.Required {
			if _, ok := written[req]; !ok {
				t.Errorf("%s minimal value does not write required %s", c.goType, req)
			}
		}
		for k := range written {
			if slices.Contains(sch.Required, k) {
				continue
			}
			without := edit(t, data, nil, func(obj map[string]any) { delete(obj, k) })
			if err := v.Validate(c.schema, without); err == nil {
				t.Errorf("%s minimal value writes %s, which it could leave out", c.goType, k)
			}
		}
	}
}

func equalAsJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(parseJSON(t, ja), parseJSON(t, jb))
}

// TestPopulatedValuesSetEveryField makes sure the fully populated values really are full, so a field
// added to a Go type shows up in TestGoValuesValidate (where additionalProperties false rejects it
// until the schema has it).
func TestPopulatedValuesSetEveryField(t *testing.T) {
	for _, c := range contracts() {
		all := map[string]bool{}
		fieldPaths(c.goType, "", all)
		set := map[string]bool{}
		for _, value := range c.populated {
			nonZeroPaths(reflect.ValueOf(value), "", set)
		}
		for p := range all {
			if !set[p] {
				t.Errorf("%s: no populated value sets %s", c.goType, p)
			}
		}
		if len(all) == 0 {
			t.Errorf("%s: no fields found", c.goType)
		}
	}
}

var timeType = reflect.TypeFor[time.Time]()

// nested reports whether t is a message struct whose fields are checked one by one.
func nested(t reflect.Type) bool { return t.Kind() == reflect.Struct && t != timeType }

func fieldPaths(t reflect.Type, prefix string, out map[string]bool) {
	for f := range t.Fields() {
		p := prefix + f.Name
		out[p] = true
		ft := f.Type
		if ft.Kind() == reflect.Slice && nested(ft.Elem()) {
			fieldPaths(ft.Elem(), p+"[].", out)
		} else if nested(ft) {
			fieldPaths(ft, p+".", out)
		}
	}
}

func nonZeroPaths(v reflect.Value, prefix string, out map[string]bool) {
	for i := range v.NumField() {
		f, fv := v.Type().Field(i), v.Field(i)
		p := prefix + f.Name
		if !fv.IsZero() {
			out[p] = true
		}
		if fv.Kind() == reflect.Slice && nested(f.Type.Elem()) {
			for j := range fv.Len() {
				nonZeroPaths(fv.Index(j), p+"[].", out)
			}
		} else if nested(f.Type) {
			nonZeroPaths(fv, p+".", out)
		}
	}
}

// deref follows $ref until it reaches the schema that declares the shape.
func deref(s *jsonschema.Schema) *jsonschema.Schema {
	for s != nil && s.Ref != nil && len(s.Properties) == 0 && s.Items2020 == nil && s.Types == nil {
		s = s.Ref
	}
	return s
}

// TestGoFieldsMatchSchemaProperties compares each Go type with its schema field by field, nested
// types included: the JSON names are the schema's properties, and the fields Go always writes (no
// omitempty) are exactly the schema's required properties.
func TestGoFieldsMatchSchemaProperties(t *testing.T) {
	v := newValidator(t)
	for _, c := range contracts() {
		sch, err := v.Schema(c.schema)
		if err != nil {
			t.Fatal(err)
		}
		compareStruct(t, c.goType, deref(sch), c.goType.Name())
	}
}

func compareStruct(t *testing.T, goType reflect.Type, sch *jsonschema.Schema, where string) {
	t.Helper()
	if sch == nil || len(sch.Properties) == 0 {
		t.Errorf("%s: schema declares no properties", where)
		return
	}
	if ap, ok := sch.AdditionalProperties.(bool); !ok || ap {
		t.Errorf("%s: schema must set additionalProperties to false", where)
	}
	var names, always []string
	for f := range goType.Fields() {
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			t.Errorf("%s.%s: every message field needs a JSON name", where, f.Name)
			continue
		}
		names = append(names, name)
		if !slices.Contains(strings.Split(opts, ","), "omitempty") {
			always = append(always, name)
		}
		ps := deref(sch.Properties[name])
		if ps == nil {
			continue // reported below
		}
		switch {
		case f.Type.Kind() == reflect.Slice && nested(f.Type.Elem()):
			compareStruct(t, f.Type.Elem(), deref(ps.Items2020), where+"."+name+"[]")
		case nested(f.Type):
			compareStruct(t, f.Type, ps, where+"."+name)
		}
	}
	var props []string
	for p := range sch.Properties {
		props = append(props, p)
	}
	slices.Sort(names)
	slices.Sort(props)
	if !slices.Equal(names, props) {
		t.Errorf("%s: Go fields %v, schema properties %v", where, names, props)
	}
	slices.Sort(always)
	required := slices.Sorted(slices.Values(sch.Required))
	if !slices.Equal(always, required) {
		t.Errorf("%s: Go always writes %v, schema requires %v", where, always, required)
	}
}

// objectSite is an object inside a message, with the schema that describes it.
type objectSite struct {
	path   []any // keys and indices from the message root
	schema *jsonschema.Schema
}

// objectSites lists every object in a decoded message that its schema describes property by
// property: the message itself, actions, identities, note lines. Free-form maps are not among them.
func objectSites(inst any, sch *jsonschema.Schema, path []any) []objectSite {
	sch = deref(sch)
	if sch == nil {
		return nil
	}
	var sites []objectSite
	switch val := inst.(type) {
	case map[string]any:
		if len(sch.Properties) == 0 {
			return nil
		}
		sites = append(sites, objectSite{path: slices.Clone(path), schema: sch})
		for _, k := range slices.Sorted(maps.Keys(val)) {
			sites = append(sites, objectSites(val[k], sch.Properties[k], append(path, k))...)
		}
	case []any:
		if len(val) > 0 {
			sites = append(sites, objectSites(val[0], sch.Items2020, append(path, 0))...)
		}
	}
	return sites
}

// edit returns a copy of the encoded message with change applied to the object at path.
func edit(t *testing.T, data []byte, path []any, change func(obj map[string]any)) []byte {
	t.Helper()
	root := parseJSON(t, data) // keeps numbers exact
	node := root
	for _, step := range path {
		switch s := step.(type) {
		case string:
			node = node.(map[string]any)[s]
		case int:
			node = node.([]any)[s]
		}
	}
	change(node.(map[string]any))
	out, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// failsWith reports whether err holds a validation error whose keyword is keyword.
func failsWith(err error, keyword string) bool {
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return false
	}
	var walk func(*jsonschema.ValidationError) bool
	walk = func(e *jsonschema.ValidationError) bool {
		if _, ok := e.ErrorKind.(*kind.Not); ok && keyword == "not" {
			return true
		}
		if kp := e.ErrorKind.KeywordPath(); len(kp) > 0 && kp[len(kp)-1] == keyword {
			return true
		}
		return slices.ContainsFunc(e.Causes, walk)
	}
	return walk(verr)
}

// encodings returns every example and every Go value of a contract, encoded.
func encodings(t *testing.T, c contract) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, ex := range examplesOf(t, c.schema) {
		out["examples/"+c.schema+"/"+ex.Name] = ex.Data
	}
	for i, value := range append(slices.Clone(c.populated), c.minimal) {
		data, err := json.Marshal(value)
		if err != nil {
			t.Fatal(err)
		}
		out[c.goType.Name()+" value "+strconv.Itoa(i)] = data
	}
	return out
}

// TestMissingRequiredFieldFails removes each required property, at every level of every example
// and Go value, and expects the schema to reject the result for that reason.
func TestMissingRequiredFieldFails(t *testing.T) {
	v := newValidator(t)
	for _, c := range contracts() {
		sch, err := v.Schema(c.schema)
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for name, data := range encodings(t, c) {
			for _, site := range objectSites(parseJSON(t, data), sch, nil) {
				for _, req := range site.schema.Required {
					broken := edit(t, data, site.path, func(obj map[string]any) { delete(obj, req) })
					checked++
					if err := v.Validate(c.schema, broken); !failsWith(err, "required") {
						t.Errorf("%s without %v.%s: got %v, want a required failure", name, site.path, req, err)
					}
				}
			}
		}
		if checked == 0 {
			t.Errorf("%s: no required property checked", c.schema)
		}
	}
}

// TestUnknownFieldFails adds an unknown property at every level of every example and Go value, and
// expects both the schema and the strict Go decoder to reject it.
func TestUnknownFieldFails(t *testing.T) {
	v := newValidator(t)
	for _, c := range contracts() {
		sch, err := v.Schema(c.schema)
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range encodings(t, c) {
			sites := objectSites(parseJSON(t, data), sch, nil)
			if len(sites) == 0 {
				t.Fatalf("%s: no objects found", name)
			}
			for _, site := range sites {
				broken := edit(t, data, site.path, func(obj map[string]any) { obj["unexpected_field"] = "x" })
				if err := v.Validate(c.schema, broken); !failsWith(err, "additionalProperties") {
					t.Errorf("%s with an unknown field at %v: got %v, want an additionalProperties failure", name, site.path, err)
				}
				if _, err := c.strictDecode(broken); err == nil {
					t.Errorf("%s with an unknown field at %v: the Go type accepted it", name, site.path)
				}
			}
		}
	}
}

// TestWrongValuesFail checks the version constant, the date-time format assertion and the enums.
func TestWrongValuesFail(t *testing.T) {
	v := newValidator(t)
	for _, c := range contracts() {
		sch, err := v.Schema(c.schema)
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(c.populated[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, version := range []any{0, 2, "1", 1.5, nil} {
			broken := edit(t, data, nil, func(obj map[string]any) { obj["version"] = version })
			if err := v.Validate(c.schema, broken); !failsWith(err, "const") && !failsWith(err, "type") {
				t.Errorf("%s with version %v: got %v, want a const or type failure", c.schema, version, err)
			}
		}
		for _, site := range objectSites(parseJSON(t, data), sch, nil) {
			for prop, ps := range site.schema.Properties {
				ps = deref(ps)
				if ps.Format != nil && ps.Format.Name == "date-time" {
					for _, bad := range []string{"2025-03-14 10:15:02Z", "2025-03-14T10:15:02", "14/03/2025 10:15", "yesterday"} {
						broken := edit(t, data, site.path, func(obj map[string]any) { obj[prop] = bad })
						if err := v.Validate(c.schema, broken); !failsWith(err, "format") {
							t.Errorf("%s %v.%s = %q: got %v, want a format failure", c.schema, site.path, prop, bad, err)
						}
					}
				}
				if ps.Enum != nil {
					broken := edit(t, data, site.path, func(obj map[string]any) { obj[prop] = "not_a_known_value" })
					if err := v.Validate(c.schema, broken); !failsWith(err, "enum") {
						t.Errorf("%s %v.%s out of its enum: got %v, want an enum failure", c.schema, site.path, prop, err)
					}
				}
			}
		}
	}
}

// TestNoRawEmailsInIdentities checks that an email in clear is refused wherever an identity is carried.
func TestNoRawEmailsInIdentities(t *testing.T) {
	v := newValidator(t)
	cases := []struct {
		schema string
		path   []any
		field  string
	}{
		{schemas.ProductActions, []any{"action"}, "session_id"},
		{schemas.ProductActions, []any{"identity"}, "distinct_id"},
		{schemas.ProductActions, []any{"identity"}, "anon_distinct_id"},
		{schemas.ProductActions, []any{"identity"}, "user_id"},
		{schemas.ProductActions, []any{"identity"}, "email_hash"},
		{schemas.ConversationEvents, nil, "external_id"},
		{schemas.ConversationEvents, nil, "email_hash"},
		{schemas.IntercomEvents, nil, "user_id"},
	}
	full := map[string][]byte{}
	for _, c := range contracts() {
		data, err := json.Marshal(c.populated[0])
		if err != nil {
			t.Fatal(err)
		}
		full[c.schema] = data
	}
	for _, tc := range cases {
		broken := edit(t, full[tc.schema], tc.path, func(obj map[string]any) { obj[tc.field] = "shopper@example.com" })
		if err := v.Validate(tc.schema, broken); !failsWith(err, "pattern") {
			t.Errorf("%s %v.%s as a raw email: got %v, want a pattern failure", tc.schema, tc.path, tc.field, err)
		}
	}
}

// packageFiles parses the package's non-test Go files.
func packageFiles(t *testing.T) []*ast.File {
	t.Helper()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		if f.Name.Name != "messages" {
			continue
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatal("no Go files of package messages found")
	}
	return files
}

// TestEveryMessageTypeHasASchema finds every message type in the package (a type with a
// MessageVersion method, or a struct with a version field) and checks it has a contract entry here,
// a schema and at least two examples; and that every schema has a Go type.
func TestEveryMessageTypeHasASchema(t *testing.T) {
	found := map[string]bool{}
	for _, f := range packageFiles(t) {
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Name.Name == "MessageVersion" && d.Recv != nil && len(d.Recv.List) == 1 {
					if id, ok := d.Recv.List[0].Type.(*ast.Ident); ok {
						found[id.Name] = true
					}
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					ts, ok := spec.(*ast.TypeSpec)
					if !ok {
						continue
					}
					st, ok := ts.Type.(*ast.StructType)
					if !ok {
						continue
					}
					for _, field := range st.Fields.List {
						if field.Tag != nil && strings.Contains(field.Tag.Value, `json:"version"`) {
							found[ts.Name.Name] = true
						}
					}
				}
			}
		}
	}
	if len(found) == 0 {
		t.Fatal("no message types found in package messages")
	}

	messagesPkg := reflect.TypeFor[messages.Action]().PkgPath()
	bySchema := map[string]contract{}
	covered := map[string]bool{}
	for _, c := range contracts() {
		bySchema[c.schema] = c
		if c.goType.PkgPath() == messagesPkg {
			covered[c.goType.Name()] = true
		} else {
			t.Errorf("%s: its Go type %s is not in package messages", c.schema, c.goType)
		}
	}
	for name := range found {
		if !covered[name] {
			t.Errorf("messages.%s has no schema contract in this test", name)
		}
	}
	for name := range covered {
		if !found[name] {
			t.Errorf("messages.%s is in the contracts but is not a message type", name)
		}
	}
	for _, name := range schemas.Names() {
		if _, ok := bySchema[name]; !ok {
			t.Errorf("schema %s has no Go type", name)
		}
		if n := len(examplesOf(t, name)); n < 2 {
			t.Errorf("schema %s has %d examples, want at least 2", name, n)
		}
	}
	for _, c := range contracts() {
		if !slices.Contains(schemas.Names(), c.schema) {
			t.Errorf("%s: no schema named %s", c.goType, c.schema)
		}
	}
}

// stringConsts returns the values of the package's string constants whose names start with prefix.
func stringConsts(t *testing.T, prefix string) []string {
	t.Helper()
	var values []string
	for _, f := range packageFiles(t) {
		for _, decl := range f.Decls {
			d, ok := decl.(*ast.GenDecl)
			if !ok || d.Tok != token.CONST {
				continue
			}
			for _, spec := range d.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if !strings.HasPrefix(n.Name, prefix) || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					s, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					values = append(values, s)
				}
			}
		}
	}
	slices.Sort(values)
	return values
}

// TestEnumsMatchGoConstants checks that each schema enum lists exactly the package's constants.
func TestEnumsMatchGoConstants(t *testing.T) {
	v := newValidator(t)
	enumOf := func(schema string, path ...string) []string {
		sch, err := v.Schema(schema)
		if err != nil {
			t.Fatal(err)
		}
		sch = deref(sch)
		for _, p := range path {
			if p == "[]" {
				sch = deref(sch.Items2020)
			} else {
				sch = deref(sch.Properties[p])
			}
		}
		if sch == nil || sch.Enum == nil {
			t.Fatalf("%s %v: no enum", schema, path)
		}
		var values []string
		for _, e := range sch.Enum.Values {
			values = append(values, e.(string))
		}
		slices.Sort(values)
		return values
	}
	cases := []struct {
		prefix string
		enum   []string
	}{
		{"Kind", enumOf(schemas.ProductActions, "action", "kind")},
		{"Kind", enumOf(schemas.ConversationActions, "actions", "[]", "kind")},
		{"Kind", enumOf(schemas.NotesWritten, "lines", "[]", "action", "kind")},
		{"Conv", enumOf(schemas.ConversationEvents, "type")},
		{"Note", enumOf(schemas.NotesWritten, "kind")},
	}
	for _, tc := range cases {
		consts := stringConsts(t, tc.prefix)
		if len(consts) == 0 {
			t.Fatalf("no %s* constants found", tc.prefix)
		}
		if !slices.Equal(consts, tc.enum) {
			t.Errorf("%s* constants %v, schema enum %v", tc.prefix, consts, tc.enum)
		}
	}
}

// TestDecodeChecksVersion covers messages.Decode for every message type.
func TestDecodeChecksVersion(t *testing.T) {
	for _, c := range contracts() {
		for _, ex := range examplesOf(t, c.schema) {
			m, err := c.decode(ex.Data)
			if err != nil {
				t.Errorf("examples/%s/%s: %v", c.schema, ex.Name, err)
				continue
			}
			if m.MessageVersion() != messages.Version {
				t.Errorf("examples/%s/%s: version %d", c.schema, ex.Name, m.MessageVersion())
			}
		}

		data, err := json.Marshal(c.populated[0])
		if err != nil {
			t.Fatal(err)
		}
		m, err := c.decode(data)
		if err != nil {
			t.Fatalf("%s: decode a Go-encoded message: %v", c.goType, err)
		}
		if !equalAsJSON(t, m, c.populated[0]) {
			t.Errorf("%s: decoded %+v, want %+v", c.goType, m, c.populated[0])
		}

		for _, tc := range []struct {
			name string
			data []byte
			want string
		}{
			{"version 2", edit(t, data, nil, func(o map[string]any) { o["version"] = 2 }), "unsupported version 2 (want 1)"},
			{"version 0", edit(t, data, nil, func(o map[string]any) { o["version"] = 0 }), "unsupported version 0 (want 1)"},
			{"no version", edit(t, data, nil, func(o map[string]any) { delete(o, "version") }), "unsupported version 0 (want 1)"},
			{"version as a string", edit(t, data, nil, func(o map[string]any) { o["version"] = "1" }), "cannot unmarshal"},
			{"truncated", data[:len(data)/2], "unexpected end of JSON input"},
			{"not an object", []byte(`[1]`), "cannot unmarshal array"},
		} {
			_, err := c.decode(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s %s: got %v, want an error containing %q", c.goType, tc.name, err, tc.want)
				continue
			}
			if !strings.Contains(err.Error(), c.goType.Name()) {
				t.Errorf("%s %s: error %q does not name the type", c.goType, tc.name, err)
			}
		}
	}
}

func BenchmarkValidateGoEncodedNote(b *testing.B) {
	v := newValidator(b)
	var c contract
	for _, cc := range contracts() {
		if cc.schema == schemas.NotesWritten {
			c = cc
		}
	}
	for b.Loop() {
		data, err := json.Marshal(c.populated[0])
		if err != nil {
			b.Fatal(err)
		}
		if err := v.Validate(c.schema, data); err != nil {
			b.Fatal(err)
		}
	}
}
