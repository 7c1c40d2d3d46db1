package fleet

import (
	"errors"
	"io"
	"log/slog"
)

// newEdgeAgent will start a real edge agent once package edge has one.
func newEdgeAgent(Device, string, Options, *slog.Logger, io.ReadWriteCloser) (agent, error) {
	return nil, errors.New("edge agent not available yet")
}
