namespace KimiSharp.Training.Charts;

/// <summary>8-bit RGB colour.</summary>
internal readonly record struct Rgb(byte R, byte G, byte B);

/// <summary>Simple RGB raster with clipped pixel, line, rectangle and bitmap-text primitives.</summary>
internal sealed class Canvas
{
    public int Width { get; }
    public int Height { get; }
    public byte[] Pixels { get; }

    public Canvas(int width, int height, Rgb background)
    {
        Width = width;
        Height = height;
        Pixels = new byte[checked(width * height * 3)];
        FillRect(0, 0, width, height, background);
    }

    public Rgb GetPixel(int x, int y)
    {
        int i = (y * Width + x) * 3;
        return new Rgb(Pixels[i], Pixels[i + 1], Pixels[i + 2]);
    }

    /// <summary>Sets a pixel if it lies inside the canvas and the optional clip rectangle.</summary>
    public void SetPixel(int x, int y, Rgb c, in ClipRect? clip = null)
    {
        if ((uint)x >= (uint)Width || (uint)y >= (uint)Height) return;
        if (clip is { } r && (x < r.Left || x >= r.Right || y < r.Top || y >= r.Bottom)) return;
        int i = (y * Width + x) * 3;
        Pixels[i] = c.R;
        Pixels[i + 1] = c.G;
        Pixels[i + 2] = c.B;
    }

    public void FillRect(int x, int y, int w, int h, Rgb c)
    {
        for (int yy = y; yy < y + h; yy++)
            for (int xx = x; xx < x + w; xx++)
                SetPixel(xx, yy, c);
    }

    /// <summary>1-px rectangle outline.</summary>
    public void StrokeRect(int x, int y, int w, int h, Rgb c)
    {
        for (int xx = x; xx < x + w; xx++) { SetPixel(xx, y, c); SetPixel(xx, y + h - 1, c); }
        for (int yy = y; yy < y + h; yy++) { SetPixel(x, yy, c); SetPixel(x + w - 1, yy, c); }
    }

    /// <summary>Bresenham line; each step stamps a <paramref name="thickness"/>² square anchored at the pixel.</summary>
    public void DrawLine(int x0, int y0, int x1, int y1, Rgb c, int thickness = 1, in ClipRect? clip = null)
    {
        int dx = Math.Abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
        int dy = -Math.Abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
        int err = dx + dy;
        while (true)
        {
            Stamp(x0, y0, c, thickness, clip);
            if (x0 == x1 && y0 == y1) break;
            int e2 = 2 * err;
            if (e2 >= dy) { err += dy; x0 += sx; }
            if (e2 <= dx) { err += dx; y0 += sy; }
        }
    }

    public void Stamp(int x, int y, Rgb c, int size, in ClipRect? clip = null)
    {
        for (int oy = 0; oy < size; oy++)
            for (int ox = 0; ox < size; ox++)
                SetPixel(x + ox, y + oy, c, clip);
    }

    /// <summary>Draws text with its top-left corner at (x, y); glyph pixels become scale×scale blocks.</summary>
    public void DrawText(int x, int y, string text, Rgb c, int scale)
    {
        foreach (char ch in text)
        {
            byte[] rows = BitmapFont.Glyph(ch);
            for (int gy = 0; gy < BitmapFont.GlyphHeight; gy++)
                for (int gx = 0; gx < BitmapFont.GlyphWidth; gx++)
                    if ((rows[gy] & (0x10 >> gx)) != 0)
                        FillRect(x + gx * scale, y + gy * scale, scale, scale, c);
            x += BitmapFont.Advance * scale;
        }
    }

    /// <summary>Draws text rotated 90° counter-clockwise (reading bottom-to-top); (x, y) is the bottom-left corner.</summary>
    public void DrawTextVertical(int x, int y, string text, Rgb c, int scale)
    {
        foreach (char ch in text)
        {
            byte[] rows = BitmapFont.Glyph(ch);
            for (int gy = 0; gy < BitmapFont.GlyphHeight; gy++)
                for (int gx = 0; gx < BitmapFont.GlyphWidth; gx++)
                    if ((rows[gy] & (0x10 >> gx)) != 0)
                        FillRect(x + gy * scale, y - (gx + 1) * scale, scale, scale, c);
            y -= BitmapFont.Advance * scale;
        }
    }
}

/// <summary>Half-open pixel rectangle [Left, Right) × [Top, Bottom).</summary>
internal readonly record struct ClipRect(int Left, int Top, int Right, int Bottom);
