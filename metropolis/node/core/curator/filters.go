package curator

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"google.golang.org/protobuf/reflect/protoreflect"

	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

// GetNodes filters are CEL expressions written by users, so everything about
// them is bounded: their length, their parse depth, and the work evaluating
// them against one node may take. CEL itself guarantees termination (no
// unbounded loops); the cost limit turns "terminates" into "terminates
// quickly".
const (
	// maxFilterLength bounds a filter in bytes.
	maxFilterLength = 4096
	// filterCostLimit bounds the evaluation cost against a single node, in
	// CEL's abstract cost units. Realistic filters cost below 100.
	filterCostLimit = 100_000
	// filterRecursionLimit bounds the nesting of a filter.
	filterRecursionLimit = 32
	// filterRegexProgramLimit bounds the size of regexps in filters.
	filterRegexProgramLimit = 1000
)

// filterEnv is the CEL environment of GetNodes filters: the variable node
// (an api.Node) and the values of the enums found in it, by name.
var filterEnv = sync.OnceValues(func() (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.Types(&apb.Node{}),
		cel.Variable("node", cel.ObjectType(string((&apb.Node{}).ProtoReflect().Descriptor().FullName()))),
		cel.ParserExpressionSizeLimit(maxFilterLength),
		cel.ParserRecursionLimit(filterRecursionLimit),
		cel.RegexProgramSizeLimit(filterRegexProgramLimit),
	}
	for _, e := range []protoreflect.EnumDescriptor{
		cpb.NodeState(0).Descriptor(),
		cpb.NodeTPMUsage(0).Descriptor(),
		apb.Node_Health(0).Descriptor(),
	} {
		values := e.Values()
		for i := 0; i < values.Len(); i++ {
			v := values.Get(i)
			opts = append(opts, cel.Constant(string(v.Name()), cel.IntType, types.Int(v.Number())))
		}
	}
	return cel.NewEnv(opts...)
})

// nodeFilter is a compiled GetNodes filter.
type nodeFilter struct {
	program cel.Program
}

// errFilterInvalid wraps every error caused by the filter itself rather than
// by the server.
var errFilterInvalid = errors.New("invalid filter")

// compileNodeFilter compiles a GetNodes filter. An empty filter matches every
// node and compiles to nil.
func compileNodeFilter(expr string) (*nodeFilter, error) {
	if expr == "" {
		return nil, nil
	}
	if len(expr) > maxFilterLength {
		return nil, fmt.Errorf("%w: longer than %d bytes", errFilterInvalid, maxFilterLength)
	}
	env, err := filterEnv()
	if err != nil {
		return nil, fmt.Errorf("building filter environment: %w", err)
	}
	ast, issues := env.Compile(expr)
	if err := issues.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", errFilterInvalid, err)
	}
	if !ast.OutputType().IsExactType(types.BoolType) {
		return nil, fmt.Errorf("%w: evaluates to %s, not bool", errFilterInvalid, ast.OutputType())
	}
	program, err := env.Program(ast,
		cel.CostLimit(filterCostLimit),
		cel.InterruptCheckFrequency(100),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errFilterInvalid, err)
	}
	return &nodeFilter{program: program}, nil
}

// match evaluates the filter against n. A nil filter matches everything.
// Evaluation errors, including exceeding the cost limit, wrap
// errFilterInvalid.
func (f *nodeFilter) match(ctx context.Context, n *apb.Node) (bool, error) {
	if f == nil {
		return true, nil
	}
	out, _, err := f.program.ContextEval(ctx, map[string]any{"node": n})
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, fmt.Errorf("%w: evaluating against node %s: %v", errFilterInvalid, n.Id, err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("%w: evaluated to %v, not bool", errFilterInvalid, out)
	}
	return b, nil
}
