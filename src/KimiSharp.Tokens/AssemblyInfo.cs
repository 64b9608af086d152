namespace KimiSharp.Tokens;
