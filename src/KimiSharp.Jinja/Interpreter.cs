using System.Text;

namespace KimiSharp.Jinja;

/// <summary>
/// Tree-walking evaluator with Jinja2's scoping: <c>{% for %}</c> bodies get a fresh scope per iteration
/// (assignments inside a loop never leak out, which is why templates use <c>namespace()</c>), macros, set
/// blocks, filter blocks and with blocks get their own scope, <c>{% if %}</c> does not.
/// </summary>
internal sealed class Interpreter
{
    private enum Flow
    {
        Normal,
        Break,
        Continue,
    }

    private const int MaxCallDepth = 256;

    /// <summary>Evaluation steps between clock reads (reading it on every step would cost more than the steps).</summary>
    private const int StepsPerTimeCheck = 1024;

    private readonly JinjaTemplate _template;
    private readonly SourceMap _map;
    private readonly RenderBudget _budget;
    private int _callDepth;
    private int _steps;

    public Interpreter(JinjaTemplate template, SourceMap map, CancellationToken cancellationToken = default)
    {
        _template = template;
        _map = map;
        _budget = new RenderBudget(template.Options.Limits, cancellationToken);
    }

    public JinjaOptions Options => _template.Options;

    public string Render(List<Node> body, IReadOnlyDictionary<string, JinjaValue> variables)
    {
        var globals = new Scope(null);
        Globals.Install(globals);
        if (Options.Globals is not null)
        {
            foreach (var (k, v) in Options.Globals)
                globals.Set(k, v);
        }
        var root = new Scope(globals);
        foreach (var (k, v) in variables)
            root.Set(k, v);
        var output = new StringBuilder();
        using (_budget.Enter())
            Exec(body, root, output);
        return output.ToString();
    }

    /// <summary>Appends rendered text, within <see cref="JinjaLimits.MaxOutputLength"/>.</summary>
    private void Append(StringBuilder output, string text)
    {
        _budget.CheckOutput((long)output.Length + text.Length);
        output.Append(text);
    }

    private void Step()
    {
        if (++_steps % StepsPerTimeCheck == 0)
            _budget.CheckTime();
    }

    private TemplateLimitExceededException Wrap(LimitHit e, int pos)
    {
        var (line, col) = _map.Locate(pos);
        return new TemplateLimitExceededException(e.Limit, e.Message, line, col, _template.Name);
    }

    // ---- errors -------------------------------------------------------------------------------

    /// <summary>An unexpected .NET exception (an interpreter bug or resource limit) still gets a template location.</summary>
    private TemplateException WrapUnexpected(Exception e, int pos)
    {
        var (line, col) = _map.Locate(pos);
        return new TemplateException(TemplateErrorKind.Runtime, $"internal error: {e.GetType().Name}: {e.Message}", line, col,
            _template.Name, "InternalError", e);
    }

    private TemplateException Wrap(PyException e, int pos)
    {
        var (line, col) = _map.Locate(pos);
        var kind = e.PythonType switch
        {
            "UndefinedError" => TemplateErrorKind.Undefined,
            "TemplateError" => TemplateErrorKind.Raised,
            "SecurityError" => TemplateErrorKind.Security,
            _ => TemplateErrorKind.Runtime,
        };
        return new TemplateException(kind, e.Message, line, col, _template.Name, e.PythonType);
    }

    // ---- statements ---------------------------------------------------------------------------

    private Flow Exec(List<Node> body, Scope scope, StringBuilder output)
    {
        foreach (var node in body)
        {
            var flow = Exec(node, scope, output);
            if (flow != Flow.Normal)
                return flow;
        }
        return Flow.Normal;
    }

    private Flow Exec(Node node, Scope scope, StringBuilder output)
    {
        try
        {
            Step();
            switch (node)
            {
                case TextNode t:
                    Append(output, t.Text);
                    return Flow.Normal;
                case OutputNode o:
                    Append(output, Eval(o.Expr, scope).ToString());
                    return Flow.Normal;
                case IfNode i:
                    foreach (var branch in i.Branches)
                    {
                        if (Eval(branch.Test, scope).IsTruthy)
                            return Exec(branch.Body, scope, output);
                    }
                    return i.Else is null ? Flow.Normal : Exec(i.Else, scope, output);
                case ForNode f:
                    ExecFor(f, scope, output);
                    return Flow.Normal;
                case SetNode s:
                    Assign(s.Target, Eval(s.Value, scope), scope);
                    return Flow.Normal;
                case SetBlockNode sb:
                {
                    var buffer = new StringBuilder();
                    Exec(sb.Body, new Scope(scope), buffer);
                    JinjaValue value = new JinjaString(buffer.ToString());
                    foreach (var f in sb.Filters)
                        value = ApplyFilter(f, value, scope);
                    Assign(sb.Target, value, scope);
                    return Flow.Normal;
                }
                case MacroNode m:
                    scope.Set(m.Name, new JinjaMacro(m, scope));
                    return Flow.Normal;
                case FilterBlockNode fb:
                {
                    var buffer = new StringBuilder();
                    Exec(fb.Body, new Scope(scope), buffer);
                    JinjaValue value = new JinjaString(buffer.ToString());
                    foreach (var f in fb.Filters)
                        value = ApplyFilter(f, value, scope);
                    Append(output, value.ToString());
                    return Flow.Normal;
                }
                case WithNode w:
                {
                    var inner = new Scope(scope);
                    var values = w.Assignments.Select(a => Eval(a.Value, scope)).ToList();
                    for (int k = 0; k < values.Count; k++)
                        Assign(w.Assignments[k].Target, values[k], inner);
                    return Exec(w.Body, inner, output);
                }
                case ScopeNode sc:
                    return Exec(sc.Body, new Scope(scope), output);
                case BreakNode:
                    return Flow.Break;
                case ContinueNode:
                    return Flow.Continue;
                default:
                    throw new InvalidOperationException($"Unknown node {node.GetType().Name}");
            }
        }
        catch (PyException e)
        {
            throw Wrap(e, node.Pos);
        }
        catch (LimitHit e)
        {
            throw Wrap(e, node.Pos);
        }
        catch (Exception e) when (e is not TemplateException and not OutOfMemoryException and not OperationCanceledException)
        {
            throw WrapUnexpected(e, node.Pos);
        }
    }

    private void ExecFor(ForNode f, Scope scope, StringBuilder output)
    {
        var iterable = Eval(f.Iter, scope);
        IReadOnlyList<JinjaValue> items = PyOps.Iterate(iterable);
        if (f.Filter is not null)
        {
            // The inline filter sees the loop target but not `loop` (Jinja2 filters before counting).
            var kept = new List<JinjaValue>();
            foreach (var item in items)
            {
                _budget.CountIteration();
                var probe = new Scope(scope);
                Assign(f.Target, item, probe);
                if (Eval(f.Filter, probe).IsTruthy)
                    kept.Add(item);
            }
            items = kept;
        }
        else
        {
            // Snapshot so that the body may mutate the list it iterates (Python would see the mutation; templates don't rely on it).
            items = [.. items];
        }

        // Jinja2 runs the else block unless some iteration reached the end of the body: an iteration left
        // through {% break %} or {% continue %} does not count (it compiles to a flag reset at the body's end).
        bool completedAnIteration = false;
        var loop = new LoopContext(items);
        for (int i = 0; i < items.Count; i++)
        {
            _budget.CountIteration();
            loop.Index0 = i;
            var iterScope = new Scope(scope);
            iterScope.Set("loop", loop);
            Assign(f.Target, items[i], iterScope);
            var flow = Exec(f.Body, iterScope, output);
            if (flow == Flow.Normal)
                completedAnIteration = true;
            else if (flow == Flow.Break)
                break;
        }
        if (!completedAnIteration && f.Else is not null)
            Exec(f.Else, new Scope(scope), output);
    }

    private void Assign(Target target, JinjaValue value, Scope scope)
    {
        switch (target)
        {
            case NameTarget n:
                scope.Set(n.Name, value);
                break;
            case NamespaceTarget ns:
            {
                if (!scope.TryGet(ns.Name, out var obj) || obj is not JinjaNamespace nsObj)
                    throw new PyException("TemplateRuntimeError", "cannot assign attribute on non-namespace object");
                nsObj.Attributes[ns.Attr] = value;
                break;
            }
            case TupleTarget t:
            {
                if (value is JinjaUndefined u)
                    throw PyOps.UndefinedError(u);
                var items = PyOps.Iterate(value);
                if (items.Count < t.Items.Count)
                    throw new PyException("ValueError", $"not enough values to unpack (expected {t.Items.Count}, got {items.Count})");
                if (items.Count > t.Items.Count)
                    throw new PyException("ValueError", $"too many values to unpack (expected {t.Items.Count})");
                for (int i = 0; i < t.Items.Count; i++)
                    Assign(t.Items[i], items[i], scope);
                break;
            }
        }
    }

    // ---- macros -------------------------------------------------------------------------------

    /// <summary>Calls a macro with Jinja2's Macro.__call__ argument rules.</summary>
    public JinjaValue CallMacro(JinjaMacro macro, JinjaArguments args)
    {
        var node = macro.Node;
        var scope = new Scope(macro.Closure);
        int count = node.Params.Count;
        var kwargs = new List<KeyValuePair<string, JinjaValue>>(args.Keywords);

        // Positionals fill parameters first; keywords are consulted only for parameters left over.
        var values = new JinjaValue?[count];
        for (int i = 0; i < Math.Min(count, args.Positional.Count); i++)
            values[i] = args.Positional[i];
        if (args.Positional.Count < count)
        {
            for (int i = args.Positional.Count; i < count; i++)
            {
                int k = kwargs.FindIndex(kv => kv.Key == node.Params[i].Name);
                if (k >= 0)
                {
                    values[i] = kwargs[k].Value;
                    kwargs.RemoveAt(k);
                }
            }
        }

        if (node.CatchKwargs)
        {
            var dict = new JinjaDict();
            foreach (var (k, v) in kwargs)
                dict[new JinjaString(k)] = v;
            scope.Set("kwargs", dict);
        }
        else if (kwargs.Count > 0)
        {
            throw new PyException("TypeError", $"macro '{node.Name}' takes no keyword argument '{kwargs[0].Key}'");
        }

        if (node.CatchVarargs)
            scope.Set("varargs", new JinjaTuple(args.Positional.Skip(count).ToList()));
        else if (args.Positional.Count > count)
            throw new PyException("TypeError", $"macro '{node.Name}' takes not more than {count} argument(s)");

        // Defaults are evaluated inside the macro scope, in order, so they can refer to earlier parameters.
        for (int i = 0; i < count; i++)
        {
            var p = node.Params[i];
            var value = values[i]
                ?? (p.Default is not null ? Eval(p.Default, scope) : new JinjaUndefined(p.Name, $"parameter '{p.Name}' was not provided"));
            scope.Set(p.Name, value);
        }

        if (_callDepth >= MaxCallDepth)
            throw new PyException("RecursionError", "maximum macro recursion depth exceeded");
        _callDepth++;
        try
        {
            var output = new StringBuilder();
            Exec(node.Body, scope, output);
            return new JinjaString(output.ToString());
        }
        finally
        {
            _callDepth--;
        }
    }

    // ---- expressions --------------------------------------------------------------------------

    public JinjaValue Eval(Expr expr, Scope scope)
    {
        try
        {
            Step();
            var value = EvalCore(expr, scope);
            if (value is JinjaString s)
                RenderBudget.CheckString(s.Value.Length);
            return value;
        }
        catch (PyException e)
        {
            throw Wrap(e, expr.Pos);
        }
        catch (LimitHit e)
        {
            throw Wrap(e, expr.Pos);
        }
        catch (Exception e) when (e is not TemplateException and not OutOfMemoryException and not OperationCanceledException)
        {
            throw WrapUnexpected(e, expr.Pos);
        }
    }

    private JinjaValue EvalCore(Expr expr, Scope scope)
    {
        switch (expr)
        {
            case ConstExpr c:
                return c.Value;
            case NameExpr n:
                return scope.TryGet(n.Name, out var v) ? v : new JinjaUndefined(n.Name);
            case ListExpr l:
                return new JinjaList(l.Items.Select(i => Eval(i, scope)).ToList());
            case TupleExpr t:
                return new JinjaTuple(t.Items.Select(i => Eval(i, scope)).ToList());
            case DictExpr d:
            {
                var dict = new JinjaDict();
                foreach (var (k, val) in d.Items)
                {
                    var key = Eval(k, scope);
                    dict[key] = Eval(val, scope);
                }
                return dict;
            }
            case GetAttrExpr g:
                return Access.GetAttr(Eval(g.Obj, scope), g.Name, this);
            case GetItemExpr g:
                return Access.GetItem(Eval(g.Obj, scope), Eval(g.Key, scope), this);
            case SliceExpr s:
                return new SliceValue(
                    s.Start is null ? JinjaNone.Instance : Eval(s.Start, scope),
                    s.Stop is null ? JinjaNone.Instance : Eval(s.Stop, scope),
                    s.Step is null ? JinjaNone.Instance : Eval(s.Step, scope));
            case CallExpr c:
            {
                var func = Eval(c.Func, scope);
                var args = EvalArgs(c.Args, scope);
                return Call(func, args);
            }
            case FilterExpr f:
                return ApplyFilter(f, f.Input is null ? JinjaUndefined.Plain : Eval(f.Input, scope), scope);
            case TestExpr t:
                return JinjaValue.From(Tests.Apply(t.Name, Eval(t.Input, scope), EvalArgs(t.Args, scope), this));
            case UnaryExpr u:
            {
                var operand = Eval(u.Operand, scope);
                return u.Op switch
                {
                    "not" => JinjaValue.From(!operand.IsTruthy),
                    "-" => PyOps.Negate(operand),
                    _ => PyOps.Plus(operand),
                };
            }
            case BinaryExpr b:
                return EvalBinary(b, scope);
            case ConcatExpr c:
            {
                var sb = new StringBuilder();
                foreach (var item in c.Items)
                    sb.Append(Eval(item, scope).ToString());
                return new JinjaString(sb.ToString());
            }
            case CompareExpr c:
            {
                var left = Eval(c.First, scope);
                foreach (var (op, operandExpr) in c.Rest)
                {
                    var right = Eval(operandExpr, scope);
                    bool ok = op switch
                    {
                        "==" => PyOps.Equal(left, right),
                        "!=" => !PyOps.Equal(left, right),
                        "in" => PyOps.Contains(right, left),
                        "notin" => !PyOps.Contains(right, left),
                        _ => PyOps.Compare(left, right, op),
                    };
                    if (!ok)
                        return JinjaBool.False;
                    left = right;
                }
                return JinjaBool.True;
            }
            case CondExpr c:
                if (Eval(c.Test, scope).IsTruthy)
                    return Eval(c.Then, scope);
                if (c.Else is not null)
                    return Eval(c.Else, scope);
                return new JinjaUndefined(null,
                    $"the inline if-expression on line {_map.Locate(c.Pos).Line} evaluated to false and no else section was defined.");
            default:
                throw new InvalidOperationException($"Unknown expression {expr.GetType().Name}");
        }
    }

    private JinjaValue EvalBinary(BinaryExpr b, Scope scope)
    {
        var left = Eval(b.Left, scope);
        switch (b.Op)
        {
            case "and":
                return left.IsTruthy ? Eval(b.Right, scope) : left;
            case "or":
                return left.IsTruthy ? left : Eval(b.Right, scope);
        }
        var right = Eval(b.Right, scope);
        return b.Op switch
        {
            "+" => PyOps.Add(left, right),
            "-" => PyOps.Sub(left, right),
            "*" => PyOps.Mul(left, right),
            "/" => PyOps.TrueDiv(left, right),
            "//" => PyOps.FloorDiv(left, right),
            "%" => PyOps.Mod(left, right),
            "**" => PyOps.Pow(left, right),
            _ => throw new InvalidOperationException(b.Op),
        };
    }

    private JinjaArguments EvalArgs(CallArgs a, Scope scope)
    {
        if (a.Positional.Count == 0 && a.Keywords.Count == 0 && a.DynArgs is null && a.DynKwargs is null)
            return JinjaArguments.None;
        var positional = new List<JinjaValue>(a.Positional.Count);
        foreach (var e in a.Positional)
            positional.Add(Eval(e, scope));
        if (a.DynArgs is not null)
            positional.AddRange(PyOps.Iterate(Eval(a.DynArgs, scope)));
        var keywords = new List<KeyValuePair<string, JinjaValue>>(a.Keywords.Count);
        foreach (var (name, e) in a.Keywords)
            keywords.Add(new(name, Eval(e, scope)));
        if (a.DynKwargs is not null)
        {
            var d = Eval(a.DynKwargs, scope);
            if (d is not JinjaDict dict)
                throw new PyException("TypeError", $"argument after ** must be a mapping, not {d.PythonTypeName}");
            foreach (var (k, v) in dict.Pairs)
            {
                if (k is not JinjaString ks)
                    throw new PyException("TypeError", "keywords must be strings");
                keywords.Add(new(ks.Value, v));
            }
        }
        for (int i = 0; i < keywords.Count; i++)
        {
            for (int j = 0; j < i; j++)
            {
                if (keywords[i].Key == keywords[j].Key)
                    throw new PyException("TypeError", $"got multiple values for keyword argument '{keywords[i].Key}'");
            }
        }
        return new JinjaArguments(positional, keywords);
    }

    public JinjaValue Call(JinjaValue func, JinjaArguments args) => func switch
    {
        JinjaCallable c => c.Invoke(args, this),
        JinjaUndefined u => throw PyOps.UndefinedError(u),
        _ => throw new PyException("TypeError", $"'{func.PythonTypeName}' object is not callable"),
    };

    private JinjaValue ApplyFilter(FilterExpr f, JinjaValue input, Scope scope) =>
        Filters.Apply(f.Name, input, EvalArgs(f.Args, scope), this);
}
