package style

import (
	"fmt"

	"github.com/stylespace/style/internal/engine"
)

// Optimizer updates parameters from their gradients, one mini-batch at a
// time. *RMSProp and *SGD implement it.
//
// An Optimizer keeps per-parameter state (accumulators, velocities) between
// calls, so it must be given the same parameter slices, in the same order
// and with the same lengths, at every Step; Reset forgets the state. An
// Optimizer is not safe for concurrent use.
type Optimizer interface {
	// Step updates each params[i] in place from grads[i].
	// It panics if len(params) != len(grads) or the lengths of params[i]
	// and grads[i] differ or changed since the previous Step.
	Step(params, grads [][]float32)
	// Reset discards the optimizer's state, as if it were new.
	Reset()
}

// RMSProp is the RMSProp optimizer with Keras' semantics: for each
// parameter p with gradient g and accumulator a (starting at 0),
//
//	a = Rho·a + (1-Rho)·g²
//	p = p - LearningRate·g / (sqrt(a) + Epsilon)
//
// Epsilon is added outside the square root. The zero value uses Keras'
// defaults. The accumulators are float32 and live in the value, so use a
// fresh RMSProp (or Reset) for each training run. Step spreads large
// parameter slices over Workers goroutines in fixed chunks; the result is
// the same for any number of workers.
type RMSProp struct {
	LearningRate float64 // step size; zero means 1e-3
	Rho          float64 // decay of the squared-gradient average; zero means 0.9
	Epsilon      float64 // added to the root mean square; zero means 1e-7
	// Workers bounds the goroutines of a Step; zero means
	// runtime.GOMAXPROCS(0). A negative value makes Step panic. The
	// Trainer's default RMSProp gets the Trainer's Workers.
	Workers int

	acc [][]float32
}

func (o *RMSProp) hyper() (lr, rho, eps float64) {
	lr, rho, eps = o.LearningRate, o.Rho, o.Epsilon
	if lr == 0 {
		lr = 1e-3
	}
	if rho == 0 {
		rho = 0.9
	}
	if eps == 0 {
		eps = 1e-7
	}
	return lr, rho, eps
}

// Step implements Optimizer. Besides the panics of Optimizer.Step, it
// panics if Workers is negative.
func (o *RMSProp) Step(params, grads [][]float32) {
	if o.Workers < 0 {
		panic(fmt.Sprintf("style: RMSProp.Step: Workers is %d, want 0 (GOMAXPROCS) or more", o.Workers))
	}
	o.acc = optimState(o.acc, params, grads, "RMSProp")
	lr, rho, eps := o.hyper()
	for i := range params {
		engine.RMSPropStep(params[i], grads[i], o.acc[i], lr, rho, eps, o.Workers)
	}
}

// Reset implements Optimizer.
func (o *RMSProp) Reset() { o.acc = nil }

// SGD is stochastic gradient descent with optional momentum, with Keras'
// semantics: v = Momentum·v - LearningRate·g, then p = p + v, or with
// Nesterov momentum p = p + Momentum·v - LearningRate·g. Velocities start at
// 0. The zero value is plain SGD with Keras' default learning rate.
type SGD struct {
	LearningRate float64 // step size; zero means 0.01
	Momentum     float64 // zero means no momentum
	Nesterov     bool    // use Nesterov momentum

	vel [][]float32
}

// Step implements Optimizer.
func (o *SGD) Step(params, grads [][]float32) {
	lr := o.LearningRate
	if lr == 0 {
		lr = 0.01
	}
	if o.Momentum == 0 {
		if len(params) != len(grads) {
			panic("style: SGD.Step: len(params) != len(grads)")
		}
		for i := range params {
			if len(params[i]) != len(grads[i]) {
				panic(fmt.Sprintf("style: SGD.Step: parameter %d has %d values and %d gradients",
					i, len(params[i]), len(grads[i])))
			}
			sgdUpdate(params[i], grads[i], nil, lr, 0, false)
		}
		return
	}
	o.vel = optimState(o.vel, params, grads, "SGD")
	for i := range params {
		sgdUpdate(params[i], grads[i], o.vel[i], lr, o.Momentum, o.Nesterov)
	}
}

// Reset implements Optimizer.
func (o *SGD) Reset() { o.vel = nil }

func sgdUpdate[T learnFloat](p, g, v []T, lr, momentum float64, nesterov bool) {
	tlr, tm := T(lr), T(momentum)
	if v == nil {
		for i, gi := range g {
			p[i] -= tlr * gi
		}
		return
	}
	for i, gi := range g {
		vi := tm*v[i] - tlr*gi
		v[i] = vi
		if nesterov {
			p[i] += tm*vi - tlr*gi
		} else {
			p[i] += vi
		}
	}
}

// optimState checks params and grads against the optimizer state st and
// allocates it, zeroed, on first use.
func optimState(st, params, grads [][]float32, name string) [][]float32 {
	if len(params) != len(grads) {
		panic(fmt.Sprintf("style: %s.Step: %d parameters but %d gradients", name, len(params), len(grads)))
	}
	for i := range params {
		if len(params[i]) != len(grads[i]) {
			panic(fmt.Sprintf("style: %s.Step: parameter %d has %d values and %d gradients",
				name, i, len(params[i]), len(grads[i])))
		}
	}
	if st == nil {
		st = make([][]float32, len(params))
		for i := range params {
			st[i] = make([]float32, len(params[i]))
		}
		return st
	}
	if len(st) != len(params) {
		panic(fmt.Sprintf("style: %s.Step: %d parameters, but the state was made for %d (call Reset)", name, len(params), len(st)))
	}
	for i := range params {
		if len(st[i]) != len(params[i]) {
			panic(fmt.Sprintf("style: %s.Step: parameter %d changed length (call Reset)", name, i))
		}
	}
	return st
}
