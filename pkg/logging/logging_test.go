package logging

import (
	"errors"
	"testing"

	"go.uber.org/zap"
)

func TestValidate(t *testing.T) {
	if err := (Config{Level: "info", Format: "json"}).Validate(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is((Config{Level: "info", Format: "xml"}).Validate(), ErrBadFormat) {
		t.Fatal("unknown format accepted")
	}
	if (Config{Level: "loud", Format: "json"}).Validate() == nil {
		t.Fatal("unknown level accepted")
	}
}

func TestNewHonoursTheLevel(t *testing.T) {
	log, err := New(Config{Level: "warn", Format: "json"}, "linker")
	if err != nil {
		t.Fatal(err)
	}
	if log.Core().Enabled(zap.InfoLevel) || !log.Core().Enabled(zap.WarnLevel) {
		t.Fatal("level not applied")
	}
}
