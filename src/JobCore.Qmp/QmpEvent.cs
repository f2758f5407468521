using System.Text.Json.Nodes;

namespace JobCore.Qmp;

/// <summary>An asynchronous QMP event, sent to every client that completed capability negotiation.</summary>
/// <param name="Name">The event name, e.g. <c>JOB_STATUS_CHANGE</c>.</param>
/// <param name="Data">The <c>data</c> member, or null to omit it.</param>
/// <param name="Timestamp">When the event happened; sent as <c>{"seconds", "microseconds"}</c> since the Unix epoch.</param>
public sealed record QmpEvent(string Name, JsonObject? Data, DateTimeOffset Timestamp)
{
    /// <summary>Builds the wire form <c>{"timestamp": ..., "event": ..., "data": ...}</c>.</summary>
    public JsonObject ToJson()
    {
        var micros = (Timestamp - DateTimeOffset.UnixEpoch).Ticks / 10;
        var json = new JsonObject
        {
            ["timestamp"] = new JsonObject
            {
                ["seconds"] = micros / 1_000_000,
                ["microseconds"] = micros % 1_000_000,
            },
            ["event"] = Name,
        };
        if (Data is not null)
        {
            json["data"] = Data.DeepClone();
        }

        return json;
    }
}
