using System.Numerics.Tensors;
using KimiSharp.Kernels;
using KimiSharp.Model.Configuration;

namespace KimiSharp.Model.Layers;

/// <summary>
/// DeepSeek-V3 mixture of experts: sigmoid router with an expert-choice bias (noaux_tc), group-limited top-k,
/// SwiGLU experts weighted by their unbiased scores, plus always-on shared experts.
/// </summary>
public sealed class MoeBlock
{
    private readonly ModelConfig _config;

    public required WeightMatrix Router { get; init; }
    /// <summary>e_score_correction_bias: added to the scores to choose experts, never to weight them.</summary>
    public required float[] ChoiceBias { get; init; }
    public required FeedForward[] Experts { get; init; }
    public FeedForward? Shared { get; init; }

    public MoeBlock(ModelConfig config) => _config = config;

    /// <summary>The experts chosen for one token and their weights.</summary>
    public void Route(ReadOnlySpan<float> routerLogits, Span<int> experts, Span<float> weights, Span<float> scratch)
    {
        int count = _config.NRoutedExperts, k = _config.NumExpertsPerTok;
        var scores = scratch[..count];
        var choice = scratch.Slice(count, count);
        TensorPrimitives.Sigmoid(routerLogits, scores);
        TensorPrimitives.Add(scores, ChoiceBias, choice);
        ExpertRouting.ChooseExperts(choice, _config.NGroup, _config.TopkGroup, experts[..k]);
        ExpertRouting.Weigh<float>(scores, experts[..k], _config.NormTopkProb, _config.RoutedScalingFactor, weights[..k]);
    }

    /// <summary>order = the choices 0…k−1 sorted by their expert id (ids are distinct): the order expert outputs are added in.</summary>
    private static void OrderByExpert(ReadOnlySpan<float> chosen, Span<int> order)
    {
        for (int j = 0; j < order.Length; j++) order[j] = j;
        for (int a = 1; a < order.Length; a++) // insertion sort: k is small
            for (int b = a; b > 0 && chosen[order[b]] < chosen[order[b - 1]]; b--)
                (order[b], order[b - 1]) = (order[b - 1], order[b]);
    }

    /// <summary>
    /// Decode: the shared expert and every routed expert of the token as two parallel jobs (all gate/up projections,
    /// then all down projections) instead of three per expert. Each product and the order the weighted expert outputs
    /// are added in (ascending expert id, after the shared expert) are those of the batched path, so the result is
    /// bit-identical to running the token in a batch.
    /// </summary>
    private unsafe void ForwardOneToken(ReadOnlySpan<float> x, Span<float> output, ReadOnlySpan<float> chosen, ReadOnlySpan<float> weights, ForwardWorkspace ws)
    {
        int hidden = _config.HiddenSize, k = chosen.Length;
        Span<int> order = stackalloc int[k];
        OrderByExpert(chosen, order);

        int width = Experts.Length > 0 ? Experts[0].Width : 0, sharedWidth = Shared?.Width ?? 0;
        var hiddenBuffer = ws.OneTokenHidden.Array((long)k * hidden);
        var gateUp = ws.OneTokenGateUp.Array(2L * k * width + 2L * sharedWidth);
        var xCopy = ws.OneTokenInput.Array(hidden);
        x.CopyTo(xCopy);
        var batch = ws.Batch;
        fixed (float* px = xCopy)
        fixed (float* pg = gateUp)
        fixed (float* ph = hiddenBuffer)
        fixed (float* po = output)
        {
            float* sharedGate = pg + 2L * k * width, sharedUp = sharedGate + sharedWidth;
            batch.Clear();
            if (Shared is not null)
            {
                batch.Add(Shared.Gate, px, sharedGate);
                batch.Add(Shared.Up, px, sharedUp);
            }
            for (int j = 0; j < k; j++)
            {
                var expert = Experts[(int)chosen[order[j]]];
                batch.Add(expert.Gate, px, pg + 2L * j * width);
                batch.Add(expert.Up, px, pg + (2L * j + 1) * width);
            }
            batch.Run(ws.Kernels);

            batch.Clear();
            if (Shared is not null)
            {
                var g = new Span<float>(sharedGate, sharedWidth);
                Ops.SiluMultiply(g, new Span<float>(sharedUp, sharedWidth), g);
                batch.Add(Shared.Down, sharedGate, po);
            }
            for (int j = 0; j < k; j++)
            {
                var g = new Span<float>(pg + 2L * j * width, width);
                Ops.SiluMultiply(g, new Span<float>(pg + (2L * j + 1) * width, width), g);
                batch.Add(Experts[(int)chosen[order[j]]].Down, pg + 2L * j * width, ph + (long)j * hidden);
            }
            batch.Run(ws.Kernels);
        }
        if (Shared is null) output.Clear();
        for (int j = 0; j < k; j++)
            TensorPrimitives.MultiplyAdd(hiddenBuffer.AsSpan(j * hidden, hidden), weights[order[j]], output, output);
    }

    private long _passes, _expertsTouched;

    /// <summary>
    /// Decode passes through this block (every sequence in the pass fed one token), and the distinct routed experts
    /// they touched in all: each touched expert's weights stream once per pass, so this sizes a decode step's reads.
    /// </summary>
    public (long Passes, long ExpertsTouched) DecodeUsage => (Interlocked.Read(ref _passes), Interlocked.Read(ref _expertsTouched));

    private void CountTouchedExperts(ReadOnlySpan<float> chosen, ForwardWorkspace ws)
    {
        if (!ws.DecodeOnly) return;
        var seen = ws.ExpertSeen.Get(_config.NRoutedExperts);
        seen.Clear();
        int distinct = 0;
        foreach (float id in chosen)
            if (seen[(int)id] == 0) { seen[(int)id] = 1; distinct++; }
        Interlocked.Increment(ref _passes);
        Interlocked.Add(ref _expertsTouched, distinct);
    }

    /// <summary>output[t] = Σ_j w_tj·Expert_j(x[t]) + Shared(x[t]); experts run once on all the tokens routed to them.</summary>
    internal void Forward(ReadOnlySpan<float> x, Span<float> output, int tokens, ForwardWorkspace ws)
    {
        int hidden = _config.HiddenSize, count = _config.NRoutedExperts, k = _config.NumExpertsPerTok;
        var logits = ws.RouterLogits.Get((long)tokens * count);
        var kernels = ws.Kernels;
        var profile = ws.Profile;
        long clock = profile.Start();
        MatrixKernels.MatMul(Router, x, logits, tokens, kernels);

        var chosen = ws.ChosenExperts.Get((long)tokens * k);      // expert ids, stored as floats for one workspace type
        var weights = ws.ExpertWeights.Get((long)tokens * k);
        var routeScratch = ws.RouteScratch.Get(2L * count);
        Span<int> ids = stackalloc int[k];
        for (int t = 0; t < tokens; t++)
        {
            Route(logits.Slice(t * count, count), ids, weights.Slice(t * k, k), routeScratch);
            for (int j = 0; j < k; j++) chosen[t * k + j] = ids[j];
        }

        profile.Stop(ForwardPhase.Router, clock);
        CountTouchedExperts(chosen[..(tokens * k)], ws);

        if (tokens == 1)
        {
            clock = profile.Start();
            ForwardOneToken(x[..hidden], output[..hidden], chosen[..k], weights[..k], ws);
            profile.Stop(ForwardPhase.RoutedExperts, clock);
            return;
        }

        clock = profile.Start();
        if (Shared is not null)
            Shared.Forward(x, output, tokens, ws.SharedScratch.Get(2L * tokens * Shared.Width), kernels);
        else
            output[..(tokens * hidden)].Clear();
        profile.Stop(ForwardPhase.SharedExperts, clock);
        clock = profile.Start();

        // Each expert runs once over the tokens routed to it; experts are the work items of one parallel job (each on one
        // thread, its products inline), then every token adds its experts' weighted outputs in ascending expert order.
        int slots = tokens * k;
        var job = _expertJob ??= new ExpertJob(this);
        var combine = _combineJob ??= new CombineJob(this);
        unsafe
        {
            fixed (float* px = x)
            fixed (float* po = output)
            fixed (float* pc = chosen)
            fixed (float* pw = weights)
            {
                // One expert per work item, largest first, claimed dynamically, so experts with more tokens balance out.
                // (An expert's products inside a work item run on that item's thread.)
                job.Prepare(px, chosen, tokens, ws, kernels);
                if (KernelThreading.PartsFor((long)slots * hidden * Experts[0].Width * 3, count, kernels.MaxThreads) <= 1) job.Run(0, count);
                else KernelThreading.ParallelRows(count, count, job, kernels.MaxThreads);
                combine.Prepare(job, po, pc, pw);
                int parts = KernelThreading.PartsFor((long)slots * hidden, tokens, kernels.MaxThreads);
                if (parts <= 1) combine.Run(0, tokens);
                else KernelThreading.ParallelRows(tokens, parts, combine, kernels.MaxThreads);
            }
        }
        profile.Stop(ForwardPhase.RoutedExperts, clock);
    }

    private ExpertJob? _expertJob;
    private CombineJob? _combineJob;

    /// <summary>
    /// The routed experts of a batch: slots (token, choice) grouped by expert, tokens ascending within an expert; work item e
    /// gathers expert e's inputs, runs the expert and leaves its outputs in the slots' rows.
    /// </summary>
    private sealed unsafe class ExpertJob(MoeBlock block) : IRowJob
    {
        [ThreadStatic] private static float[]? t_scratch;
        [ThreadStatic] private static float[]? t_gathered;

        private float* _x;
        private float[] _outputs = [];
        private int[] _start = [], _slotToken = [], _slotOf = [], _order = [], _sizeKeys = [];
        private int _hidden;
        private KernelSettings _kernels = KernelSettings.Default;

        public float[] Outputs => _outputs;
        /// <summary>The slot holding choice j of token t (its row in <see cref="Outputs"/>).</summary>
        public int SlotOf(int t, int j) => _slotOf[t * block._config.NumExpertsPerTok + j];

        /// <summary><paramref name="x"/> ([tokens, hidden]) must stay pinned until the job has run.</summary>
        public void Prepare(float* x, ReadOnlySpan<float> chosen, int tokens, ForwardWorkspace ws, KernelSettings kernels)
        {
            var c = block._config;
            int count = c.NRoutedExperts, k = c.NumExpertsPerTok, slots = tokens * k;
            _hidden = c.HiddenSize;
            _kernels = kernels;
            _x = x;
            _outputs = ws.ExpertOutputs.Array((long)slots * _hidden);
            if (_start.Length < count + 1) _start = new int[count + 1];
            if (_slotToken.Length < slots) { _slotToken = new int[slots]; _slotOf = new int[slots]; }
            Array.Clear(_start, 0, count + 1);
            for (int i = 0; i < slots; i++) _start[(int)chosen[i] + 1]++;
            for (int e = 0; e < count; e++) _start[e + 1] += _start[e];
            Span<int> next = stackalloc int[count];
            _start.AsSpan(0, count).CopyTo(next);
            for (int t = 0; t < tokens; t++)
                for (int j = 0; j < k; j++)
                {
                    int slot = next[(int)chosen[t * k + j]]++;
                    _slotToken[slot] = t;
                    _slotOf[t * k + j] = slot;
                }
            // Work items in decreasing expert size (most tokens first), so the last items a thread claims are the
            // smallest and the threads finish together; each expert's outputs are its own, so the order changes nothing else.
            if (_order.Length < count) { _order = new int[count]; _sizeKeys = new int[count]; }
            for (int e = 0; e < count; e++) { _order[e] = e; _sizeKeys[e] = -(_start[e + 1] - _start[e]); }
            Array.Sort(_sizeKeys, _order, 0, count);
        }

        public void Run(int first, int end)
        {
            for (int item = first; item < end; item++)
            {
                int e = _order[item], from = _start[e], n = _start[e + 1] - from;
                if (n == 0) continue;
                // Inputs gathered into this thread's buffer (grown when needed): only the outputs need a row per slot.
                long inputs = (long)n * _hidden;
                if (t_gathered is null || t_gathered.Length < inputs) t_gathered = new float[Math.Max(inputs, 2 * (t_gathered?.Length ?? 0))];
                for (int i = 0; i < n; i++)
                    new ReadOnlySpan<float>(_x + (long)_slotToken[from + i] * _hidden, _hidden).CopyTo(t_gathered.AsSpan(i * _hidden, _hidden));
                var expert = block.Experts[e];
                long need = 2L * n * expert.Width;
                if (t_scratch is null || t_scratch.Length < need) t_scratch = new float[Math.Max(need, 2 * (t_scratch?.Length ?? 0))];
                expert.Forward(t_gathered.AsSpan(0, (int)inputs), _outputs.AsSpan(from * _hidden, n * _hidden), n, t_scratch.AsSpan(0, (int)need), _kernels);
            }
        }
    }

    /// <summary>output[t] += Σ_j w_tj · expert output, the experts of token t taken in ascending id; one work item per token.</summary>
    private sealed unsafe class CombineJob(MoeBlock block) : IRowJob
    {
        private ExpertJob _experts = null!;
        private float* _output, _chosen, _weights;

        public void Prepare(ExpertJob experts, float* output, float* chosen, float* weights)
        {
            _experts = experts; _output = output; _chosen = chosen; _weights = weights;
        }

        public void Run(int first, int end)
        {
            int k = block._config.NumExpertsPerTok, hidden = block._config.HiddenSize;
            Span<int> order = stackalloc int[k];
            for (int t = first; t < end; t++)
            {
                OrderByExpert(new ReadOnlySpan<float>(_chosen + (long)t * k, k), order);
                var target = new Span<float>(_output + (long)t * hidden, hidden);
                for (int j = 0; j < k; j++)
                {
                    int slot = _experts.SlotOf(t, order[j]);
                    TensorPrimitives.MultiplyAdd(_experts.Outputs.AsSpan(slot * hidden, hidden), _weights[t * k + order[j]], target, target);
                }
            }
        }
    }
}
