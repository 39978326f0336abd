//go:build !ballotfaults

package server

import "github.com/ballot-kv/ballot/store"

func loadFaults() (faults, error) { return faults{}, nil }

func (faults) storeOptions(o store.Options) store.Options { return o }
