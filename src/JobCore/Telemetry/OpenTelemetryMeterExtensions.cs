using JobCore;

namespace OpenTelemetry.Metrics;

/// <summary>Adds JobCore's metrics to an OpenTelemetry meter provider.</summary>
public static class JobCoreMeterProviderBuilderExtensions
{
    /// <summary>Subscribes the provider to the <c>JobCore</c> meter.</summary>
    public static MeterProviderBuilder AddJobCoreInstrumentation(this MeterProviderBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddMeter(JobCoreTelemetry.SourceName);
    }
}
