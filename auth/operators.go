package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"outbound/store"
)

// On disk, bucket "operators" maps an operator's name to the JSON form of
// Operator. Operators are the people who run the relay: they sign in to
// the web interface and may do everything the admin API allows. They are
// not SMTP logins and cannot send mail.
var operatorsBucket = []byte("operators")

// ErrNoSuchOperator is returned for an operator name that does not exist.
var ErrNoSuchOperator = errors.New("no such operator")

// ErrOperatorExists is returned when adding a name that is already an operator.
var ErrOperatorExists = errors.New("operator already exists")

// Operator is one account of the web interface with every right.
type Operator struct {
	// Name is what the operator types as Login on the sign-in page.
	Name string `json:"name"`
	// PasswordHash is the bcrypt hash of the password; read by Verify.
	PasswordHash []byte `json:"password_hash"`
	// Created is when the operator was added.
	Created time.Time `json:"created"`
}

// Operators keeps the operator accounts in the shared store (package
// store). It hashes as the users' Store does and shares its bcrypt slots,
// so that sign-in attempts and SMTP AUTH together never run more than one
// bcrypt per CPU.
type Operators struct {
	db    store.DB
	users *Store
}

// NewOperators opens (creating if needed) the operators bucket in db.
// users is the store whose hashing cost and bcrypt slots it shares.
func NewOperators(db store.DB, users *Store) (*Operators, error) {
	err := db.Update(func(tx store.Tx) error {
		_, err := tx.CreateBucketIfNotExists(operatorsBucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating operators bucket: %w", err)
	}
	return &Operators{db: db, users: users}, nil
}

// Add creates an operator. The name follows the rules of a user's login
// and the password those of a user's password.
func (o *Operators) Add(name, password string) (*Operator, error) {
	if err := ValidateName(name); err != nil {
		// The same rules, in the operator's words.
		return nil, errors.New(strings.Replace(err.Error(), "user name", "operator name", 1))
	}
	if err := ValidatePassword(password); err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), o.users.cost)
	if err != nil {
		return nil, fmt.Errorf("hashing password: %w", err)
	}
	op := &Operator{Name: name, PasswordHash: hash, Created: time.Now().UTC()}
	err = o.db.Update(func(tx store.Tx) error {
		b := tx.Bucket(operatorsBucket)
		if b.Get([]byte(name)) != nil {
			return fmt.Errorf("%w: %s", ErrOperatorExists, name)
		}
		v, err := json.Marshal(op)
		if err != nil {
			return err
		}
		return b.Put([]byte(name), v)
	})
	if err != nil {
		return nil, err
	}
	return op, nil
}

// Exists reports whether name is an operator. The sign-in page checks a
// name that is an operator only as an operator, never as an SMTP login.
func (o *Operators) Exists(name string) (bool, error) {
	var ok bool
	err := o.db.View(func(tx store.Tx) error {
		ok = tx.Bucket(operatorsBucket).Get([]byte(name)) != nil
		return nil
	})
	return ok, err
}

// Get returns the named operator or ErrNoSuchOperator.
func (o *Operators) Get(name string) (*Operator, error) {
	var op *Operator
	err := o.db.View(func(tx store.Tx) error {
		v := tx.Bucket(operatorsBucket).Get([]byte(name))
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNoSuchOperator, name)
		}
		op = new(Operator)
		return json.Unmarshal(v, op)
	})
	return op, err
}

// List returns every operator, sorted by name.
func (o *Operators) List() ([]*Operator, error) {
	var ops []*Operator
	err := o.db.View(func(tx store.Tx) error {
		return tx.Bucket(operatorsBucket).ForEach(func(k, v []byte) error {
			op := new(Operator)
			if err := json.Unmarshal(v, op); err != nil {
				return fmt.Errorf("operator %q: %w", k, err)
			}
			ops = append(ops, op)
			return nil
		})
	})
	sort.Slice(ops, func(i, j int) bool { return ops[i].Name < ops[j].Name })
	return ops, err
}

// Delete removes an operator. Its open sessions are the web interface's
// to end (it looks the operator up on every request).
func (o *Operators) Delete(name string) error {
	return o.db.Update(func(tx store.Tx) error {
		b := tx.Bucket(operatorsBucket)
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("%w: %s", ErrNoSuchOperator, name)
		}
		return b.Delete([]byte(name))
	})
}

// Verify checks an operator's name and password, returning
// ErrBadCredentials when either is wrong. An unknown name costs a bcrypt
// comparison as a known one does, so names cannot be found by timing.
// Nothing is cached: an operator signs in once per session.
func (o *Operators) Verify(name, password string) (*Operator, error) {
	var op *Operator
	err := o.db.View(func(tx store.Tx) error {
		v := tx.Bucket(operatorsBucket).Get([]byte(name))
		if v == nil {
			return nil
		}
		op = new(Operator)
		return json.Unmarshal(v, op)
	})
	if err != nil {
		return nil, err
	}
	if op == nil {
		o.users.cache.slowCompare(dummyHash(), []byte(password))
		return nil, ErrBadCredentials
	}
	if o.users.cache.slowCompare(op.PasswordHash, []byte(password)) != nil {
		return nil, ErrBadCredentials
	}
	return op, nil
}
