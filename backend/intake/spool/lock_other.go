//go:build !unix

package spool

import "io"

type noLock struct{}

func (noLock) Close() error { return nil }

// lockDir does nothing where flock is missing: run one process per spool.
func lockDir(string) (io.Closer, error) { return noLock{}, nil }
