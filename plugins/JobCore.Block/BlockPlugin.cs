using JobCore.Block;
using JobCore.Block.Graph;
using JobCore.Block.Jobs;
using JobCore.Block.Qmp;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace JobCore.Block
{
    /// <summary>
    /// The block plugin: one <see cref="BlockGraph"/> per host (a singleton, closed with the service provider), the
    /// block job types (<c>stream</c>, intermediate and active <c>commit</c>, <c>mirror</c>) and the block layer's QMP commands (<c>blockdev-add</c>,
    /// <c>blockdev-del</c>, <c>query-named-block-nodes</c>, <c>block-stream</c>, <c>block-commit</c>). Found by <c>jobcored --plugins</c> or applied with
    /// <see cref="BlockJobCoreBuilderExtensions.AddBlockJobs"/>.
    /// </summary>
    public sealed class BlockPlugin : JobCorePlugin
    {
        /// <inheritdoc />
        public override void Configure(JobCoreBuilder builder)
        {
            ArgumentNullException.ThrowIfNull(builder);
            builder.Services.TryAddSingleton<BlockGraph>();
            builder.AddJobType<StreamJob, StreamJobOptions>("stream");
            builder.AddJobType<CommitJob, CommitJobOptions>("commit");
            builder.AddMirrorJobs();
            builder.AddQmpCommands<BlockCommands>();
            builder.AddQmpCommands<MirrorCommands>();
        }
    }
}

namespace JobCore
{
    /// <summary>Adds the block plugin: <c>services.AddJobCore(b =&gt; b.AddBlockJobs())</c>.</summary>
    public static class BlockJobCoreBuilderExtensions
    {
        /// <summary>Applies <see cref="BlockPlugin"/> (once).</summary>
        /// <param name="builder">The JobCore builder.</param>
        /// <returns>The builder.</returns>
        public static JobCoreBuilder AddBlockJobs(this JobCoreBuilder builder)
        {
            ArgumentNullException.ThrowIfNull(builder);
            return builder.AddPlugin(new BlockPlugin());
        }
    }
}
