// Package schemas owns the message contract: the JSON Schema (draft 2020-12) of every message Threadline
// puts on a topic, and example messages for each. The files are embedded, so tests and services can
// validate messages against the very schemas published in this directory.
package schemas

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// embedded holds the message schemas and their examples. Every message schema is named after its
// default topic, which has a dot in its name, so the patterns leave out the trigger rules' schema
// and examples (embedded below): they describe a configuration file, not a message.
//
//go:embed *.*.schema.json common.schema.json examples/*.*
var embedded embed.FS

//go:embed triggers.schema.json
var triggersSchema []byte

//go:embed examples/triggers
var triggerExamples embed.FS

// Names of the message schemas. Each is the default name of the topic whose values it describes; the
// schema is in <name>.schema.json and its examples in examples/<name>/.
const (
	ProductActions        = "product.actions"
	ConversationEvents    = "conversation.events"
	ConversationActions   = "conversation.actions"
	NotesWritten          = "notes.written"
	ConversationSummaries = "conversation.summaries"
	DeadLetters           = "threadline.dlq"
	IntercomEvents        = "intercom.events"
)

// BaseURI is the URI that every schema's $id starts with; $ref between schema files resolves against it.
const BaseURI = "https://github.com/threadline/threadline/schemas/"

// CommonFile holds the definitions that several message schemas share. It describes no message itself.
const CommonFile = "common.schema.json"

// TriggersFile is the JSON Schema of the proactive trigger rules: the YAML file named by
// THREADLINE_TRIGGERS_FILE. It is not a message schema and is not in Names, FS or NewValidator.
const TriggersFile = "triggers.schema.json"

const (
	schemaSuffix         = ".schema.json"
	examplesDir          = "examples"
	triggerExamplesDir   = "examples/triggers"
	triggerExampleSuffix = ".yaml"
)

var (
	// ErrUnknownSchema is returned for a schema name that is not one of Names.
	ErrUnknownSchema = errors.New("unknown message schema")
	// ErrInvalidMessage is returned for a message that is not JSON or does not match its schema.
	ErrInvalidMessage = errors.New("message does not match its schema")
)

// Names lists the message schemas, in pipeline order.
func Names() []string {
	return []string{
		ProductActions,
		ConversationEvents,
		ConversationActions,
		NotesWritten,
		ConversationSummaries,
		DeadLetters,
		IntercomEvents,
	}
}

// FileName is the file in FS that holds the named schema.
func FileName(name string) string { return name + schemaSuffix }

// FS returns the schema files (<name>.schema.json and CommonFile) and the examples
// (examples/<name>/*.json).
func FS() fs.FS { return embedded }

// Example is one example message of a schema.
type Example struct {
	Name string // file name within examples/<schema name>/
	Data []byte
}

// Examples returns the example messages of the named schema, sorted by file name.
func Examples(name string) ([]Example, error) {
	if !slices.Contains(Names(), name) {
		return nil, fmt.Errorf("examples of %q: %w", name, ErrUnknownSchema)
	}
	dir := path.Join(examplesDir, name)
	entries, err := fs.ReadDir(embedded, dir) // sorted by file name
	if err != nil {
		return nil, fmt.Errorf("examples of %q: %w", name, err)
	}
	var examples []Example
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		data, err := fs.ReadFile(embedded, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("examples of %q: %w", name, err)
		}
		examples = append(examples, Example{Name: e.Name(), Data: data})
	}
	return examples, nil
}

// TriggersSchema returns the JSON Schema (draft 2020-12) of the trigger rules file, TriggersFile.
func TriggersSchema() []byte { return bytes.Clone(triggersSchema) }

// TriggersExamples returns the example rule files (examples/triggers/*.yaml), sorted by file name.
func TriggersExamples() ([]Example, error) {
	entries, err := fs.ReadDir(triggerExamples, triggerExamplesDir) // sorted by file name
	if err != nil {
		return nil, fmt.Errorf("trigger examples: %w", err)
	}
	var examples []Example
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), triggerExampleSuffix) {
			continue
		}
		data, err := fs.ReadFile(triggerExamples, path.Join(triggerExamplesDir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("trigger examples: %w", err)
		}
		examples = append(examples, Example{Name: e.Name(), Data: data})
	}
	return examples, nil
}

// Validator checks encoded messages against the compiled schemas. It asserts formats (date-time, uri)
// and content encodings (base64). A Validator is safe for concurrent use.
type Validator struct {
	compiled map[string]*jsonschema.Schema
}

// NewValidator compiles every message schema.
func NewValidator() (*Validator, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.AssertContent()

	files, err := fs.Glob(embedded, "*"+schemaSuffix)
	if err != nil {
		return nil, fmt.Errorf("list schema files: %w", err)
	}
	for _, file := range files {
		data, err := fs.ReadFile(embedded, file)
		if err != nil {
			return nil, fmt.Errorf("read schema %s: %w", file, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("parse schema %s: %w", file, err)
		}
		if err := c.AddResource(BaseURI+file, doc); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", file, err)
		}
	}

	v := &Validator{compiled: make(map[string]*jsonschema.Schema, len(Names()))}
	for _, name := range Names() {
		sch, err := c.Compile(BaseURI + FileName(name))
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", name, err)
		}
		v.compiled[name] = sch
	}
	return v, nil
}

// Validate checks one encoded message against the named schema. A mismatch wraps ErrInvalidMessage
// and, when the message is JSON, the *jsonschema.ValidationError that says where it breaks the schema.
func (v *Validator) Validate(name string, data []byte) error {
	sch, err := v.Schema(name)
	if err != nil {
		return err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: %s: not JSON: %w", ErrInvalidMessage, name, err)
	}
	if err := sch.Validate(doc); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidMessage, name, err)
	}
	return nil
}

// Schema returns the compiled form of the named schema, for tools that inspect it.
func (v *Validator) Schema(name string) (*jsonschema.Schema, error) {
	sch, ok := v.compiled[name]
	if !ok {
		return nil, fmt.Errorf("schema %q: %w", name, ErrUnknownSchema)
	}
	return sch, nil
}
