namespace KimiSharp.Jinja;

/// <summary>
/// Recursive-descent parser following jinja2.parser.Parser method by method, so that operator precedence
/// and its quirks match: <c>~</c> binds tighter than <c>+</c>, filters and <c>is</c> tests bind tighter than
/// any binary operator, <c>**</c> is left-associative, and <c>-x|f</c> means <c>(-x)|f</c>.
/// </summary>
internal sealed class Parser
{
    private static readonly HashSet<string> CompareOps = ["==", "!=", "<", "<=", ">", ">="];

    private readonly List<Token> _tokens;
    private readonly SourceMap _map;
    private readonly string? _name;
    private int _index;
    private readonly List<string> _tagStack = [];
    private readonly List<string[]> _endTokenStack = [];
    private int _loopDepth;

    private Parser(List<Token> tokens, SourceMap map, string? name)
    {
        _tokens = tokens;
        _map = map;
        _name = name;
    }

    public static List<Node> Parse(List<Token> tokens, SourceMap map, string? name)
    {
        var parser = new Parser(tokens, map, name);
        var body = parser.Subparse(null);
        return body;
    }

    // ---- token stream -------------------------------------------------------------------------

    private Token Current => _tokens[_index];
    private Token Look => _index + 1 < _tokens.Count ? _tokens[_index + 1] : _tokens[^1];

    private Token Next()
    {
        var t = _tokens[_index];
        if (_index < _tokens.Count - 1)
            _index++;
        return t;
    }

    private bool SkipOp(string op)
    {
        if (Current.IsOp(op))
        {
            Next();
            return true;
        }
        return false;
    }

    private bool SkipName(string name)
    {
        if (Current.IsName(name))
        {
            Next();
            return true;
        }
        return false;
    }

    private TemplateException Fail(string message, int? pos = null, string pythonType = "TemplateSyntaxError")
    {
        var (line, col) = _map.Locate(pos ?? Current.Pos);
        return new TemplateException(TemplateErrorKind.Syntax, message, line, col, _name, pythonType);
    }

    /// <summary>Jinja2's describe_token: names describe as themselves, others by their kind.</summary>
    private static string Describe(Token t) => t.Kind switch
    {
        TokenKind.Name or TokenKind.Operator => t.Value,
        TokenKind.VariableBegin => "begin of print statement",
        TokenKind.VariableEnd => "end of print statement",
        TokenKind.BlockBegin => "begin of statement block",
        TokenKind.BlockEnd => "end of statement block",
        TokenKind.Eof => "end of template",
        TokenKind.String => "string",
        TokenKind.Integer => "integer",
        TokenKind.Float => "float",
        TokenKind.Data => "template data / text",
        _ => t.Kind.ToString(),
    };

    private Token Expect(TokenKind kind, string? value, string description)
    {
        var t = Current;
        if (t.Kind == kind && (value is null || t.Value == value))
            return Next();
        if (t.Kind == TokenKind.Eof)
            throw Fail($"unexpected end of template, expected '{description}'.");
        throw Fail($"expected token '{description}', got '{Describe(t)}'");
    }

    private Token ExpectOp(string op) => Expect(TokenKind.Operator, op, op);
    private Token ExpectName(string name) => Expect(TokenKind.Name, name, name);
    private Token ExpectAnyName() => Expect(TokenKind.Name, null, "name");
    private void ExpectBlockEnd() => Expect(TokenKind.BlockEnd, null, "end of statement block");

    // ---- statements ---------------------------------------------------------------------------

    private List<Node> Subparse(string[]? endTokens)
    {
        var body = new List<Node>();
        if (endTokens is not null)
            _endTokenStack.Add(endTokens);
        try
        {
            while (Current.Kind != TokenKind.Eof)
            {
                var token = Current;
                switch (token.Kind)
                {
                    case TokenKind.Data:
                        body.Add(new TextNode(token.Pos, token.Value));
                        Next();
                        break;
                    case TokenKind.VariableBegin:
                        Next();
                        body.Add(new OutputNode(token.Pos, ParseTuple(withCondExpr: true)));
                        Expect(TokenKind.VariableEnd, null, "end of print statement");
                        break;
                    case TokenKind.BlockBegin:
                        Next();
                        if (endTokens is not null && Current.Kind == TokenKind.Name && endTokens.Contains(Current.Value))
                            return body;
                        body.Add(ParseStatement());
                        ExpectBlockEnd();
                        break;
                    default:
                        throw Fail("internal parsing error");
                }
            }
        }
        finally
        {
            if (endTokens is not null)
                _endTokenStack.RemoveAt(_endTokenStack.Count - 1);
        }
        return body;
    }

    private Node ParseStatement()
    {
        var token = Current;
        if (token.Kind != TokenKind.Name)
            throw Fail("tag name expected");
        _tagStack.Add(token.Value);
        bool popTag = true;
        try
        {
            switch (token.Value)
            {
                case "for": return ParseFor();
                case "if": return ParseIf();
                case "set": return ParseSet();
                case "macro": return ParseMacro();
                case "filter": return ParseFilterBlock();
                case "with": return ParseWith();
                case "generation": return ParseGeneration();
                case "break":
                case "continue":
                    Next();
                    if (_loopDepth == 0)
                        throw Fail($"'{token.Value}' outside of a loop", token.Pos);
                    return token.Value == "break" ? new BreakNode(token.Pos) : new ContinueNode(token.Pos);
                case "block" or "extends" or "include" or "import" or "from" or "call" or "autoescape" or "raw":
                    throw Fail($"The '{token.Value}' tag is not supported by this chat-template interpreter.", token.Pos);
                default:
                    // Unknown tag: pop it first so the error names the enclosing block, as Jinja2 does.
                    _tagStack.RemoveAt(_tagStack.Count - 1);
                    popTag = false;
                    throw FailUnknownTag(token.Value, token.Pos);
            }
        }
        finally
        {
            if (popTag)
                _tagStack.RemoveAt(_tagStack.Count - 1);
        }
    }

    private TemplateException FailUnknownTag(string? name, int pos)
    {
        var parts = new List<string> { name is null ? "Unexpected end of template." : $"Encountered unknown tag '{name}'." };
        if (_endTokenStack.Count > 0)
        {
            var expected = _endTokenStack.SelectMany(x => x).ToHashSet();
            string looking = string.Join(" or ", _endTokenStack[^1].Select(x => $"'{x}'"));
            if (name is not null && expected.Contains(name))
                parts.Add($"You probably made a nesting mistake. Jinja is expecting this tag, but currently looking for {looking}.");
            else
                parts.Add($"Jinja was looking for the following tags: {looking}.");
        }
        if (_tagStack.Count > 0)
            parts.Add($"The innermost block that needs to be closed is '{_tagStack[^1]}'.");
        return Fail(string.Join(" ", parts), pos);
    }

    /// <summary>Parses a statement body up to one of <paramref name="endTokens"/> (left as the current token).</summary>
    private List<Node> ParseStatements(string[] endTokens, bool dropNeedle = false)
    {
        SkipOp(":");
        ExpectBlockEnd();
        var result = Subparse(endTokens);
        if (Current.Kind == TokenKind.Eof)
            throw FailUnknownTagAtEof(endTokens);
        if (dropNeedle)
            Next();
        return result;
    }

    private TemplateException FailUnknownTagAtEof(string[] endTokens)
    {
        _endTokenStack.Add(endTokens);
        try
        {
            return FailUnknownTag(null, Current.Pos);
        }
        finally
        {
            _endTokenStack.RemoveAt(_endTokenStack.Count - 1);
        }
    }

    private Node ParseFor()
    {
        int pos = ExpectName("for").Pos;
        var target = ParseAssignTarget(extraEndRules: ["in"]);
        ExpectName("in");
        var iter = ParseTuple(withCondExpr: false, extraEndRules: ["recursive"]);
        Expr? test = null;
        if (SkipName("if"))
            test = ParseExpression();
        bool recursive = SkipName("recursive");
        if (recursive)
            throw Fail("recursive loops are not supported by this chat-template interpreter", pos);
        _loopDepth++;
        List<Node> body;
        try
        {
            body = ParseStatements(["endfor", "else"]);
        }
        finally
        {
            _loopDepth--;
        }
        List<Node>? elseBody = null;
        if (Next().Value != "endfor")
            elseBody = ParseStatements(["endfor"], dropNeedle: true);
        return new ForNode(pos, target, iter, test, body, elseBody, recursive);
    }

    private Node ParseIf()
    {
        int pos = ExpectName("if").Pos;
        var branches = new List<IfBranch>();
        List<Node>? elseBody = null;
        while (true)
        {
            var test = ParseTuple(withCondExpr: false);
            var body = ParseStatements(["elif", "else", "endif"]);
            branches.Add(new IfBranch(test, body));
            var token = Next();
            if (token.IsName("elif"))
                continue;
            if (token.IsName("else"))
                elseBody = ParseStatements(["endif"], dropNeedle: true);
            break;
        }
        return new IfNode(pos, branches, elseBody);
    }

    private Node ParseSet()
    {
        int pos = Next().Pos;
        var target = ParseAssignTarget(withNamespace: true);
        if (SkipOp("="))
            return new SetNode(pos, target, ParseTuple(withCondExpr: true));
        var filters = ParseFilterChain(startInline: false);
        var body = ParseStatements(["endset"], dropNeedle: true);
        return new SetBlockNode(pos, target, filters, body);
    }

    private Node ParseMacro()
    {
        int pos = Next().Pos;
        var nameToken = ExpectAnyName();
        var parameters = new List<MacroParam>();
        ExpectOp("(");
        bool sawDefault = false;
        while (!Current.IsOp(")"))
        {
            if (parameters.Count > 0)
                ExpectOp(",");
            var p = ExpectAnyName();
            Expr? def = null;
            if (SkipOp("="))
            {
                def = ParseExpression();
                sawDefault = true;
            }
            else if (sawDefault)
            {
                throw Fail("non-default argument follows default argument", p.Pos);
            }
            parameters.Add(new MacroParam(p.Value, def));
        }
        ExpectOp(")");
        int savedLoopDepth = _loopDepth;
        _loopDepth = 0; // break/continue cannot cross a macro boundary
        List<Node> body;
        try
        {
            body = ParseStatements(["endmacro"], dropNeedle: true);
        }
        finally
        {
            _loopDepth = savedLoopDepth;
        }
        // Like Jinja2, a macro accepts extra positional/keyword arguments only if its body mentions varargs/kwargs.
        var names = new HashSet<string>();
        AstWalker.CollectNames(body, names);
        if (parameters.Any(p => p.Name == "caller") || names.Contains("caller"))
            throw Fail("macros using 'caller' are not supported by this chat-template interpreter", pos);
        return new MacroNode(pos, nameToken.Value, parameters, body,
            names.Contains("varargs") && parameters.All(p => p.Name != "varargs"),
            names.Contains("kwargs") && parameters.All(p => p.Name != "kwargs"));
    }

    private Node ParseFilterBlock()
    {
        int pos = Next().Pos;
        var filters = ParseFilterChain(startInline: true);
        var body = ParseStatements(["endfilter"], dropNeedle: true);
        return new FilterBlockNode(pos, filters, body);
    }

    private Node ParseWith()
    {
        int pos = Next().Pos;
        var assignments = new List<(Target, Expr)>();
        while (Current.Kind != TokenKind.BlockEnd)
        {
            if (assignments.Count > 0)
                ExpectOp(",");
            var target = ParseAssignTarget();
            ExpectOp("=");
            assignments.Add((target, ParseExpression()));
        }
        var body = ParseStatements(["endwith"], dropNeedle: true);
        return new WithNode(pos, assignments, body);
    }

    private Node ParseGeneration()
    {
        int pos = Next().Pos;
        var body = ParseStatements(["endgeneration"], dropNeedle: true);
        return new ScopeNode(pos, body);
    }

    // ---- assignment targets -------------------------------------------------------------------

    /// <summary>An assignment target; with <paramref name="withNamespace"/> (set statements) names may be <c>ns.attr</c>, also inside tuples.</summary>
    private Target ParseAssignTarget(bool withTuple = true, string[]? extraEndRules = null, bool withNamespace = false)
    {
        int pos = Current.Pos;
        Expr expr = withTuple
            ? ParseTuple(simplified: true, extraEndRules: extraEndRules, withNamespace: withNamespace)
            : ParsePrimary(withNamespace);
        return ToTarget(expr, pos);
    }

    private Target ToTarget(Expr expr, int pos) => expr switch
    {
        NameExpr n when n.Name is "true" or "false" or "none" or "True" or "False" or "None" => throw Fail($"can't assign to '{n.Name}'", pos),
        NameExpr n => new NameTarget(n.Pos, n.Name),
        NsRefExpr ns => new NamespaceTarget(ns.Pos, ns.Name, ns.Attr),
        TupleExpr t => new TupleTarget(t.Pos, t.Items.Select(i => ToTarget(i, i.Pos)).ToList()),
        _ => throw Fail($"can't assign to '{DescribeNode(expr)}'", pos),
    };

    private static string DescribeNode(Expr e) => e switch
    {
        ConstExpr => "const",
        ListExpr => "list",
        DictExpr => "dict",
        CallExpr => "call",
        GetAttrExpr => "getattr",
        GetItemExpr => "getitem",
        _ => e.GetType().Name.Replace("Expr", "").ToLowerInvariant(),
    };

    // ---- expressions --------------------------------------------------------------------------

    private Expr ParseExpression(bool withCondExpr = true) => withCondExpr ? ParseCondExpr() : ParseOr();

    private Expr ParseCondExpr()
    {
        int pos = Current.Pos;
        var expr1 = ParseOr();
        while (SkipName("if"))
        {
            var test = ParseOr();
            Expr? elseExpr = SkipName("else") ? ParseCondExpr() : null;
            expr1 = new CondExpr(pos, test, expr1, elseExpr);
        }
        return expr1;
    }

    private Expr ParseOr()
    {
        int pos = Current.Pos;
        var left = ParseAnd();
        while (SkipName("or"))
            left = new BinaryExpr(pos, "or", left, ParseAnd());
        return left;
    }

    private Expr ParseAnd()
    {
        int pos = Current.Pos;
        var left = ParseNot();
        while (SkipName("and"))
            left = new BinaryExpr(pos, "and", left, ParseNot());
        return left;
    }

    private Expr ParseNot()
    {
        if (Current.IsName("not"))
        {
            int pos = Next().Pos;
            return new UnaryExpr(pos, "not", ParseNot());
        }
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        int pos = Current.Pos;
        var expr = ParseMath1();
        var ops = new List<(string, Expr)>();
        while (true)
        {
            if (Current.Kind == TokenKind.Operator && CompareOps.Contains(Current.Value))
            {
                string op = Next().Value;
                ops.Add((op, ParseMath1()));
            }
            else if (SkipName("in"))
            {
                ops.Add(("in", ParseMath1()));
            }
            else if (Current.IsName("not") && Look.IsName("in"))
            {
                Next();
                Next();
                ops.Add(("notin", ParseMath1()));
            }
            else
            {
                break;
            }
        }
        return ops.Count == 0 ? expr : new CompareExpr(pos, expr, ops);
    }

    private Expr ParseMath1()
    {
        int pos = Current.Pos;
        var left = ParseConcat();
        while (Current.IsOp("+") || Current.IsOp("-"))
        {
            string op = Next().Value;
            left = new BinaryExpr(pos, op, left, ParseConcat());
        }
        return left;
    }

    private Expr ParseConcat()
    {
        int pos = Current.Pos;
        var items = new List<Expr> { ParseMath2() };
        while (SkipOp("~"))
            items.Add(ParseMath2());
        return items.Count == 1 ? items[0] : new ConcatExpr(pos, items);
    }

    private Expr ParseMath2()
    {
        int pos = Current.Pos;
        var left = ParsePow();
        while (Current.IsOp("*") || Current.IsOp("/") || Current.IsOp("//") || Current.IsOp("%"))
        {
            string op = Next().Value;
            left = new BinaryExpr(pos, op, left, ParsePow());
        }
        return left;
    }

    private Expr ParsePow()
    {
        int pos = Current.Pos;
        var left = ParseUnary();
        while (SkipOp("**"))
            left = new BinaryExpr(pos, "**", left, ParseUnary());
        return left;
    }

    private Expr ParseUnary(bool withFilter = true)
    {
        int pos = Current.Pos;
        Expr node;
        if (Current.IsOp("-"))
        {
            Next();
            node = new UnaryExpr(pos, "-", ParseUnary(false));
        }
        else if (Current.IsOp("+"))
        {
            Next();
            node = new UnaryExpr(pos, "+", ParseUnary(false));
        }
        else
        {
            node = ParsePrimary();
        }
        node = ParsePostfix(node);
        if (withFilter)
            node = ParseFilterExpr(node);
        return node;
    }

    private Expr ParsePrimary(bool withNamespace = false)
    {
        var token = Current;
        switch (token.Kind)
        {
            case TokenKind.Name:
                Next();
                switch (token.Value)
                {
                    case "true" or "True": return new ConstExpr(token.Pos, JinjaBool.True);
                    case "false" or "False": return new ConstExpr(token.Pos, JinjaBool.False);
                    case "none" or "None": return new ConstExpr(token.Pos, JinjaNone.Instance);
                }
                if (withNamespace && Current.IsOp("."))
                {
                    Next();
                    return new NsRefExpr(token.Pos, token.Value, ExpectAnyName().Value);
                }
                return new NameExpr(token.Pos, token.Value);
            case TokenKind.String:
            {
                Next();
                // Adjacent string literals concatenate, as in Python.
                string s = ((JinjaString)token.Literal!).Value;
                while (Current.Kind == TokenKind.String)
                    s += ((JinjaString)Next().Literal!).Value;
                return new ConstExpr(token.Pos, new JinjaString(s));
            }
            case TokenKind.Integer:
            case TokenKind.Float:
                Next();
                return new ConstExpr(token.Pos, token.Literal!);
            case TokenKind.Operator when token.Value == "(":
            {
                Next();
                var expr = ParseTuple(explicitParentheses: true);
                ExpectOp(")");
                return expr;
            }
            case TokenKind.Operator when token.Value == "[":
                return ParseList();
            case TokenKind.Operator when token.Value == "{":
                return ParseDict();
            default:
                throw Fail($"unexpected '{Describe(token)}'");
        }
    }

    private bool IsTupleEnd(string[]? extraEndRules)
    {
        var t = Current;
        if (t.Kind is TokenKind.VariableEnd or TokenKind.BlockEnd || t.IsOp(")"))
            return true;
        return extraEndRules is not null && t.Kind == TokenKind.Name && extraEndRules.Contains(t.Value);
    }

    /// <summary>
    /// Jinja2's parse_tuple: a comma-separated expression list that is a tuple if there is a comma
    /// (<c>{{ a, b }}</c> prints a tuple); <paramref name="simplified"/> parses only primaries (assignment targets).
    /// </summary>
    private Expr ParseTuple(bool simplified = false, bool withCondExpr = true, string[]? extraEndRules = null, bool explicitParentheses = false, bool withNamespace = false)
    {
        int pos = Current.Pos;
        var args = new List<Expr>();
        bool isTuple = false;
        while (true)
        {
            if (args.Count > 0)
                ExpectOp(",");
            if (IsTupleEnd(extraEndRules))
                break;
            args.Add(simplified ? ParsePrimary(withNamespace) : ParseExpression(withCondExpr));
            if (Current.IsOp(","))
                isTuple = true;
            else
                break;
        }
        if (!isTuple)
        {
            if (args.Count > 0)
                return args[0];
            if (!explicitParentheses)
                throw Fail($"Expected an expression, got '{Describe(Current)}'");
        }
        return new TupleExpr(pos, args);
    }

    private Expr ParseList()
    {
        int pos = ExpectOp("[").Pos;
        var items = new List<Expr>();
        while (!Current.IsOp("]"))
        {
            if (items.Count > 0)
                ExpectOp(",");
            if (Current.IsOp("]"))
                break;
            items.Add(ParseExpression());
        }
        ExpectOp("]");
        return new ListExpr(pos, items);
    }

    private Expr ParseDict()
    {
        int pos = ExpectOp("{").Pos;
        var items = new List<(Expr, Expr)>();
        while (!Current.IsOp("}"))
        {
            if (items.Count > 0)
                ExpectOp(",");
            if (Current.IsOp("}"))
                break;
            var key = ParseExpression();
            ExpectOp(":");
            items.Add((key, ParseExpression()));
        }
        ExpectOp("}");
        return new DictExpr(pos, items);
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            if (Current.IsOp(".") || Current.IsOp("["))
                node = ParseSubscript(node);
            else if (Current.IsOp("("))
                node = ParseCall(node);
            else
                return node;
        }
    }

    private Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            if (Current.IsOp("|"))
                node = ParseFilterChain(startInline: false, input: node)[^1];
            else if (Current.IsName("is"))
                node = ParseTest(node);
            else if (Current.IsOp("("))
                node = ParseCall(node);
            else
                return node;
        }
    }

    private Expr ParseSubscript(Expr node)
    {
        var token = Next();
        if (token.IsOp("."))
        {
            var attr = Current;
            Next();
            if (attr.Kind == TokenKind.Name)
                return new GetAttrExpr(token.Pos, node, attr.Value);
            if (attr.Kind != TokenKind.Integer)
                throw Fail("expected name or number", attr.Pos);
            return new GetItemExpr(token.Pos, node, new ConstExpr(attr.Pos, attr.Literal!));
        }
        var args = new List<Expr>();
        while (!Current.IsOp("]"))
        {
            if (args.Count > 0)
                ExpectOp(",");
            args.Add(ParseSubscribed());
        }
        ExpectOp("]");
        var key = args.Count == 1 ? args[0] : new TupleExpr(token.Pos, args);
        return new GetItemExpr(token.Pos, node, key);
    }

    private Expr ParseSubscribed()
    {
        int pos = Current.Pos;
        var parts = new List<Expr?>();
        if (Current.IsOp(":"))
        {
            Next();
            parts.Add(null);
        }
        else
        {
            var node = ParseExpression();
            if (!Current.IsOp(":"))
                return node;
            Next();
            parts.Add(node);
        }
        if (Current.IsOp(":"))
            parts.Add(null);
        else if (!Current.IsOp("]") && !Current.IsOp(","))
            parts.Add(ParseExpression());
        else
            parts.Add(null);
        if (Current.IsOp(":"))
        {
            Next();
            parts.Add(!Current.IsOp("]") && !Current.IsOp(",") ? ParseExpression() : null);
        }
        else
        {
            parts.Add(null);
        }
        return new SliceExpr(pos, parts[0], parts[1], parts[2]);
    }

    private Expr ParseCall(Expr node)
    {
        int pos = Current.Pos;
        var args = ParseCallArgs();
        return new CallExpr(pos, node, args);
    }

    private CallArgs ParseCallArgs()
    {
        var open = ExpectOp("(");
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        Expr? dynArgs = null, dynKwargs = null;
        bool requireComma = false;

        void Ensure(bool ok)
        {
            if (!ok)
                throw Fail("invalid syntax for function call expression", open.Pos);
        }

        while (!Current.IsOp(")"))
        {
            if (requireComma)
            {
                ExpectOp(",");
                if (Current.IsOp(")"))
                    break;
            }
            if (Current.IsOp("*"))
            {
                Ensure(dynArgs is null && dynKwargs is null);
                Next();
                dynArgs = ParseExpression();
            }
            else if (Current.IsOp("**"))
            {
                Ensure(dynKwargs is null);
                Next();
                dynKwargs = ParseExpression();
            }
            else if (Current.Kind == TokenKind.Name && Look.IsOp("="))
            {
                Ensure(dynKwargs is null);
                string key = Next().Value;
                Next();
                kwargs.Add((key, ParseExpression()));
            }
            else
            {
                Ensure(dynArgs is null && dynKwargs is null && kwargs.Count == 0);
                args.Add(ParseExpression());
            }
            requireComma = true;
        }
        ExpectOp(")");
        return new CallArgs(args, kwargs, dynArgs, dynKwargs);
    }

    /// <summary>Parses <c>| f1(args) | f2 ...</c>; returns each filter node (the last wraps all before it).</summary>
    private List<FilterExpr> ParseFilterChain(bool startInline, Expr? input = null)
    {
        var result = new List<FilterExpr>();
        while (Current.IsOp("|") || startInline)
        {
            if (!startInline)
                Next();
            var token = ExpectAnyName();
            string name = token.Value;
            while (Current.IsOp("."))
            {
                Next();
                name += "." + ExpectAnyName().Value;
            }
            if (Filters.IsUnsupportedJinjaFilter(name))
                throw Fail($"The '{name}' filter is not supported by this chat-template interpreter.", token.Pos, "TemplateAssertionError");
            if (!Filters.Exists(name))
                throw Fail($"No filter named '{name}'.", token.Pos, "TemplateAssertionError");
            var args = Current.IsOp("(") ? ParseCallArgs() : CallArgs.Empty;
            var node = new FilterExpr(token.Pos, input, name, args);
            result.Add(node);
            input = node;
            startInline = false;
        }
        return result;
    }

    private Expr ParseTest(Expr node)
    {
        var isToken = Next();
        bool negated = SkipName("not");
        var nameToken = ExpectAnyName();
        string name = nameToken.Value;
        while (Current.IsOp("."))
        {
            Next();
            name += "." + ExpectAnyName().Value;
        }
        if (!Tests.Exists(name))
            throw Fail($"No test named '{name}'.", nameToken.Pos, "TemplateAssertionError");
        CallArgs args;
        var cur = Current;
        if (cur.IsOp("("))
        {
            args = ParseCallArgs();
        }
        else if ((cur.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float
                  || cur.IsOp("(") || cur.IsOp("[") || cur.IsOp("{"))
                 && !cur.IsName("else") && !cur.IsName("or") && !cur.IsName("and"))
        {
            if (cur.IsName("is"))
                throw Fail("You cannot chain multiple tests with is");
            var arg = ParsePostfix(ParsePrimary());
            args = new CallArgs([arg], [], null, null);
        }
        else
        {
            args = CallArgs.Empty;
        }
        Expr result = new TestExpr(isToken.Pos, node, name, args);
        return negated ? new UnaryExpr(isToken.Pos, "not", result) : result;
    }
}

/// <summary>Walks AST nodes to collect referenced variable names.</summary>
internal static class AstWalker
{
    public static void CollectNames(IEnumerable<Node> nodes, HashSet<string> names)
    {
        foreach (var n in nodes)
            Collect(n, names);
    }

    private static void Collect(Node node, HashSet<string> names)
    {
        switch (node)
        {
            case OutputNode o: Collect(o.Expr, names); break;
            case IfNode i:
                foreach (var b in i.Branches)
                {
                    Collect(b.Test, names);
                    CollectNames(b.Body, names);
                }
                if (i.Else is not null) CollectNames(i.Else, names);
                break;
            case ForNode f:
                Collect(f.Iter, names);
                if (f.Filter is not null) Collect(f.Filter, names);
                CollectNames(f.Body, names);
                if (f.Else is not null) CollectNames(f.Else, names);
                break;
            case SetNode s: Collect(s.Value, names); break;
            case SetBlockNode sb:
                foreach (var f in sb.Filters) CollectArgs(f.Args, names);
                CollectNames(sb.Body, names);
                break;
            case FilterBlockNode fb:
                foreach (var f in fb.Filters) CollectArgs(f.Args, names);
                CollectNames(fb.Body, names);
                break;
            case WithNode w:
                foreach (var (_, v) in w.Assignments) Collect(v, names);
                CollectNames(w.Body, names);
                break;
            case ScopeNode sc: CollectNames(sc.Body, names); break;
            case MacroNode m:
                // A nested macro's own varargs/kwargs belong to it, but Jinja2's analysis still sees the names.
                foreach (var p in m.Params)
                    if (p.Default is not null) Collect(p.Default, names);
                CollectNames(m.Body, names);
                break;
        }
    }

    private static void CollectArgs(CallArgs a, HashSet<string> names)
    {
        foreach (var e in a.Positional) Collect(e, names);
        foreach (var (_, e) in a.Keywords) Collect(e, names);
        if (a.DynArgs is not null) Collect(a.DynArgs, names);
        if (a.DynKwargs is not null) Collect(a.DynKwargs, names);
    }

    private static void Collect(Expr expr, HashSet<string> names)
    {
        switch (expr)
        {
            case NameExpr n: names.Add(n.Name); break;
            case ListExpr l: foreach (var e in l.Items) Collect(e, names); break;
            case TupleExpr t: foreach (var e in t.Items) Collect(e, names); break;
            case DictExpr d:
                foreach (var (k, v) in d.Items)
                {
                    Collect(k, names);
                    Collect(v, names);
                }
                break;
            case GetAttrExpr g: Collect(g.Obj, names); break;
            case GetItemExpr g:
                Collect(g.Obj, names);
                Collect(g.Key, names);
                break;
            case SliceExpr s:
                if (s.Start is not null) Collect(s.Start, names);
                if (s.Stop is not null) Collect(s.Stop, names);
                if (s.Step is not null) Collect(s.Step, names);
                break;
            case CallExpr c:
                Collect(c.Func, names);
                CollectArgs(c.Args, names);
                break;
            case FilterExpr f:
                if (f.Input is not null) Collect(f.Input, names);
                CollectArgs(f.Args, names);
                break;
            case TestExpr t:
                Collect(t.Input, names);
                CollectArgs(t.Args, names);
                break;
            case UnaryExpr u: Collect(u.Operand, names); break;
            case BinaryExpr b:
                Collect(b.Left, names);
                Collect(b.Right, names);
                break;
            case ConcatExpr c: foreach (var e in c.Items) Collect(e, names); break;
            case CompareExpr c:
                Collect(c.First, names);
                foreach (var (_, e) in c.Rest) Collect(e, names);
                break;
            case CondExpr c:
                Collect(c.Test, names);
                Collect(c.Then, names);
                if (c.Else is not null) Collect(c.Else, names);
                break;
        }
    }
}
