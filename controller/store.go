package controller

import (
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
type Store struct {
	db *bolt.DB
}

var bucket = []byte("mitigations")

// OpenStore opens (creating if needed) the state file at path.
func OpenStore(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open state file %s: locked by another process (is floodgate already running?)", path)
		}
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Put writes m, replacing any mitigation with the same key.
func (s *Store) Put(m *Mitigation) error {
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
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Delete([]byte(key))
	})
}

// Load returns every stored mitigation. One that cannot be decoded is
// returned as an error alongside the others.
func (s *Store) Load() ([]*Mitigation, error) {
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

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }
