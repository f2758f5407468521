using JobCore;

namespace OpenTelemetry.Trace;

/// <summary>Adds JobCore's traces to an OpenTelemetry tracer provider.</summary>
public static class JobCoreTracerProviderBuilderExtensions
{
    /// <summary>Subscribes the provider to the <c>JobCore</c> activity source.</summary>
    public static TracerProviderBuilder AddJobCoreInstrumentation(this TracerProviderBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddSource(JobCoreTelemetry.SourceName);
    }
}
