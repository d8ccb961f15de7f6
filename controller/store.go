package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Store keeps the active mitigations on disk, so that they survive a
// crash or a restart. A mitigation is written, and synced, before its
// route is announced and deleted after it is withdrawn, so the store always
// holds at least what the routers might have.
//
// It is a bbolt file: a single file, no server, transactions that are
// durable when Put returns, and a file lock that keeps a second daemon off
// the same state.
//
// It is a component: NewStore opens nothing, Start opens the file, Stop
// closes it. The mitigation loop, its only user, starts after it and stops
// before it.
type Store struct {
	path string
	db   *bolt.DB
}

var bucket = []byte("mitigations")

var errClosed = errors.New("state file not open")

// NewStore returns the store of the state file at path, not yet open.
func NewStore(path string) *Store { return &Store{path: path} }

// OpenStore opens (creating if needed) the state file at path.
func OpenStore(path string) (*Store, error) {
	s := NewStore(path)
	if err := s.Start(context.Background()); err != nil {
		return nil, err
	}
	return s, nil
}

// Start opens (creating if needed) the state file, waiting at most a
// second for another process's lock.
func (s *Store) Start(context.Context) error {
	if s.db != nil {
		return fmt.Errorf("state file %s: already open", s.path)
	}
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return fmt.Errorf("open state file %s: locked by another process (is floodgate already running?)", s.path)
		}
		return fmt.Errorf("open state file %s: %w", s.path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		db.Close()
		return fmt.Errorf("open state file %s: %w", s.path, err)
	}
	s.db = db
	return nil
}

// Stop closes the file.
func (s *Store) Stop(context.Context) error { return s.Close() }

// Put writes m, replacing any mitigation with the same key.
func (s *Store) Put(m *Mitigation) error {
	if s.db == nil {
		return errClosed
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("store %s: %w", m.Key, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(m.Key), b)
	})
}

// Delete removes the mitigation with key.
func (s *Store) Delete(key string) error {
	if s.db == nil {
		return errClosed
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Delete([]byte(key))
	})
}

// Load returns every stored mitigation. One that cannot be decoded is
// returned as an error alongside the others.
func (s *Store) Load() ([]*Mitigation, error) {
	if s.db == nil {
		return nil, errClosed
	}
	var out []*Mitigation
	var errs []error
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var m Mitigation
			if err := json.Unmarshal(v, &m); err != nil {
				errs = append(errs, fmt.Errorf("stored mitigation %q: %w", k, err))
				return nil
			}
			out = append(out, &m)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	return out, errors.Join(errs...)
}

// Close closes the file; the store can be opened again with Start.
func (s *Store) Close() error {
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}
