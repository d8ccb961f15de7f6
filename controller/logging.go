package controller

import (
	"io"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/policies"
)

// NewLogger returns the root logger configured by cfg, writing to w.
// Sub-loggers have independent levels.
func NewLogger(cfg policies.Log, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:              "floodgate",
		Level:             hclog.LevelFromString(cfg.Level),
		JSONFormat:        cfg.Format == "json",
		Output:            w,
		IndependentLevels: true,
	})
}
