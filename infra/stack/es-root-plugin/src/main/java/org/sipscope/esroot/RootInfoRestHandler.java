package org.sipscope.esroot;

import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.ClusterState;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.index.IndexVersion;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;

import java.io.IOException;
import java.util.List;
import java.util.function.Supplier;

/**
 * {@code GET /} and {@code HEAD /}: node name, cluster name and UUID, build and version facts, tagline;
 * the document every Elasticsearch answers at its root. The server adds {@code X-elastic-product} itself.
 */
final class RootInfoRestHandler extends BaseRestHandler {

    static final String TAGLINE = "You Know, for Search";

    private final Supplier<ClusterService> clusterService;

    RootInfoRestHandler(Supplier<ClusterService> clusterService) {
        this.clusterService = clusterService;
    }

    @Override
    public String getName() {
        return "sipscope_root_info_action";
    }

    @Override
    public List<Route> routes() {
        return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
    }

    @Override
    public boolean canTripCircuitBreaker() {
        return false;
    }

    @Override
    protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) throws IOException {
        ClusterService cs = clusterService.get();
        if (cs == null) {
            throw new IllegalStateException("sipscope-root: the node has not handed the plugin its cluster service yet");
        }
        return channel -> {
            ClusterState state = cs.state();
            XContentBuilder builder = channel.newBuilder();
            if (request.hasParam("pretty") == false) {
                // like Elasticsearch's own root endpoint: pretty unless ?pretty=false says otherwise
                builder.prettyPrint().lfAtEnd();
            }
            writeInfo(builder, cs.getNodeName(), state.getClusterName().value(), state.metadata().clusterUUID());
            channel.sendResponse(new RestResponse(RestStatus.OK, builder));
        };
    }

    static void writeInfo(XContentBuilder builder, String nodeName, String clusterName, String clusterUuid) throws IOException {
        Build build = Build.current();
        builder.startObject();
        builder.field("name", nodeName);
        builder.field("cluster_name", clusterName);
        builder.field("cluster_uuid", clusterUuid);
        builder.startObject("version");
        builder.field("number", build.qualifiedVersion());
        builder.field("build_flavor", build.flavor());
        builder.field("build_type", build.type().displayName());
        builder.field("build_hash", build.hash());
        builder.field("build_date", build.date());
        builder.field("build_snapshot", build.isSnapshot());
        builder.field("lucene_version", IndexVersion.current().luceneVersion().toString());
        builder.field("minimum_wire_compatibility_version", build.minWireCompatVersion());
        builder.field("minimum_index_compatibility_version", build.minIndexCompatVersion());
        builder.endObject();
        builder.field("tagline", TAGLINE);
        builder.endObject();
    }
}
