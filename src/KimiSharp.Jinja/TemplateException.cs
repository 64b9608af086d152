namespace KimiSharp.Jinja;

/// <summary>What went wrong in a template.</summary>
public enum TemplateErrorKind
{
    /// <summary>The template text does not parse (Jinja2's <c>TemplateSyntaxError</c> / <c>TemplateAssertionError</c>).</summary>
    Syntax,

    /// <summary>An operation on an undefined value (Jinja2's <c>UndefinedError</c>).</summary>
    Undefined,

    /// <summary>A Python-level error while rendering (<c>TypeError</c>, <c>ValueError</c>, <c>ZeroDivisionError</c>...).</summary>
    Runtime,

    /// <summary>The template called <c>raise_exception(message)</c>.</summary>
    Raised,

    /// <summary>The sandbox refused an operation (Jinja2's <c>SecurityError</c>).</summary>
    Security,

    /// <summary>A resource limit of <see cref="JinjaLimits"/> was hit (<see cref="TemplateLimitExceededException"/>).</summary>
    LimitExceeded,
}

/// <summary>
/// A template failed to parse or render. <see cref="Description"/> is the bare message (Jinja2's wording where
/// there is one); <see cref="Exception.Message"/> adds the template name, line and column.
/// </summary>
public class TemplateException : Exception
{
    public TemplateException(TemplateErrorKind kind, string description, int line, int column, string? templateName = null,
        string? pythonType = null, Exception? innerException = null)
        : base(Format(kind, description, line, column, templateName), innerException)
    {
        Kind = kind;
        Description = description;
        Line = line;
        Column = column;
        TemplateName = templateName;
        PythonType = pythonType;
    }

    public TemplateErrorKind Kind { get; }

    /// <summary>The message without location, e.g. <c>'x' is undefined</c> or the text given to <c>raise_exception</c>.</summary>
    public string Description { get; }

    /// <summary>1-based line in the template source.</summary>
    public int Line { get; }

    /// <summary>1-based column in the template source.</summary>
    public int Column { get; }

    public string? TemplateName { get; }

    /// <summary>The Python exception type Jinja2 would raise (e.g. <c>TypeError</c>), for runtime errors.</summary>
    public string? PythonType { get; }

    private static string Format(TemplateErrorKind kind, string description, int line, int column, string? name)
    {
        string what = kind switch
        {
            TemplateErrorKind.Syntax => "Template syntax error",
            TemplateErrorKind.Undefined => "Undefined value",
            TemplateErrorKind.Raised => "Template raised an exception",
            TemplateErrorKind.Security => "Template sandbox violation",
            TemplateErrorKind.LimitExceeded => "Template limit exceeded",
            _ => "Template error",
        };
        string where = name is null ? $"line {line}, column {column}" : $"{name}, line {line}, column {column}";
        return $"{what} at {where}: {description}";
    }
}

/// <summary>
/// A render hit one of its <see cref="JinjaLimits"/>; <see cref="Limit"/> names it (e.g. <c>MaxOutputLength</c>),
/// and so does the message.
/// </summary>
public sealed class TemplateLimitExceededException : TemplateException
{
    public TemplateLimitExceededException(string limit, string description, int line, int column, string? templateName = null)
        : base(TemplateErrorKind.LimitExceeded, $"{description} (JinjaLimits.{limit})", line, column, templateName, "LimitExceeded")
    {
        Limit = limit;
    }

    /// <summary>The name of the <see cref="JinjaLimits"/> property that was exceeded.</summary>
    public string Limit { get; }
}
