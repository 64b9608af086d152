namespace KimiSharp.Jinja;

// The template AST. Every node carries the source offset of its first token so that runtime errors can name
// the line and column. Expressions mirror Jinja2's node types (jinja2.nodes) closely enough that the
// interpreter can follow Jinja2's evaluation order.

internal abstract record Node(int Pos);

internal sealed record TextNode(int Pos, string Text) : Node(Pos);

internal sealed record OutputNode(int Pos, Expr Expr) : Node(Pos);

internal sealed record IfNode(int Pos, List<IfBranch> Branches, List<Node>? Else) : Node(Pos);

internal sealed record IfBranch(Expr Test, List<Node> Body);

internal sealed record ForNode(int Pos, Target Target, Expr Iter, Expr? Filter, List<Node> Body, List<Node>? Else, bool Recursive) : Node(Pos);

internal sealed record SetNode(int Pos, Target Target, Expr Value) : Node(Pos);

internal sealed record SetBlockNode(int Pos, Target Target, List<FilterExpr> Filters, List<Node> Body) : Node(Pos);

internal sealed record MacroParam(string Name, Expr? Default);

internal sealed record MacroNode(int Pos, string Name, List<MacroParam> Params, List<Node> Body, bool CatchVarargs, bool CatchKwargs) : Node(Pos);

internal sealed record FilterBlockNode(int Pos, List<FilterExpr> Filters, List<Node> Body) : Node(Pos);

internal sealed record WithNode(int Pos, List<(Target Target, Expr Value)> Assignments, List<Node> Body) : Node(Pos);

/// <summary>A body rendered in its own scope (transformers' <c>{% generation %}</c> block).</summary>
internal sealed record ScopeNode(int Pos, List<Node> Body) : Node(Pos);

internal sealed record BreakNode(int Pos) : Node(Pos);

internal sealed record ContinueNode(int Pos) : Node(Pos);

// ---- assignment targets ----

internal abstract record Target(int Pos);

internal sealed record NameTarget(int Pos, string Name) : Target(Pos);

internal sealed record TupleTarget(int Pos, List<Target> Items) : Target(Pos);

/// <summary><c>ns.attr</c> in <c>{% set ns.attr = ... %}</c>.</summary>
internal sealed record NamespaceTarget(int Pos, string Name, string Attr) : Target(Pos);

// ---- expressions ----

internal abstract record Expr(int Pos);

/// <summary>An immutable literal (None, bool, int, float, str).</summary>
internal sealed record ConstExpr(int Pos, JinjaValue Value) : Expr(Pos);

internal sealed record NameExpr(int Pos, string Name) : Expr(Pos);

/// <summary><c>ns.attr</c> where only a namespace reference is allowed (set targets); never evaluated.</summary>
internal sealed record NsRefExpr(int Pos, string Name, string Attr) : Expr(Pos);

internal sealed record ListExpr(int Pos, List<Expr> Items) : Expr(Pos);

internal sealed record TupleExpr(int Pos, List<Expr> Items) : Expr(Pos);

internal sealed record DictExpr(int Pos, List<(Expr Key, Expr Value)> Items) : Expr(Pos);

internal sealed record GetAttrExpr(int Pos, Expr Obj, string Name) : Expr(Pos);

internal sealed record GetItemExpr(int Pos, Expr Obj, Expr Key) : Expr(Pos);

internal sealed record SliceExpr(int Pos, Expr? Start, Expr? Stop, Expr? Step) : Expr(Pos);

internal sealed record CallArgs(List<Expr> Positional, List<(string Name, Expr Value)> Keywords, Expr? DynArgs, Expr? DynKwargs)
{
    public static readonly CallArgs Empty = new([], [], null, null);
}

internal sealed record CallExpr(int Pos, Expr Func, CallArgs Args) : Expr(Pos);

/// <summary><c>input | name(args)</c>; <see cref="Input"/> is null inside filter blocks and set blocks.</summary>
internal sealed record FilterExpr(int Pos, Expr? Input, string Name, CallArgs Args) : Expr(Pos);

internal sealed record TestExpr(int Pos, Expr Input, string Name, CallArgs Args) : Expr(Pos);

/// <summary>Unary <c>not</c>, <c>-</c>, <c>+</c>.</summary>
internal sealed record UnaryExpr(int Pos, string Op, Expr Operand) : Expr(Pos);

/// <summary>Binary <c>+ - * / // % **</c>, <c>and</c>, <c>or</c>.</summary>
internal sealed record BinaryExpr(int Pos, string Op, Expr Left, Expr Right) : Expr(Pos);

/// <summary><c>a ~ b ~ c</c>: joins <c>str()</c> of each operand.</summary>
internal sealed record ConcatExpr(int Pos, List<Expr> Items) : Expr(Pos);

/// <summary>A (possibly chained) comparison; ops are <c>== != &lt; &lt;= &gt; &gt;= in notin</c>.</summary>
internal sealed record CompareExpr(int Pos, Expr First, List<(string Op, Expr Operand)> Rest) : Expr(Pos);

/// <summary><c>then if test else else_</c>; a missing else yields Undefined.</summary>
internal sealed record CondExpr(int Pos, Expr Test, Expr Then, Expr? Else) : Expr(Pos);
