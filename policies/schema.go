package policies

import "github.com/hashicorp/hcl/v2"

// The HCL schema. Attributes whose values need more than a type check are
// decoded as expressions so that errors can point at the value itself. No
// block has a "remain" field: an unknown name is always an error.
type fileSchema struct {
	Log        *logBlock        `hcl:"log,block"`
	Daemon     *daemonBlock     `hcl:"daemon,block"`
	Detection  *detectionBlock  `hcl:"detection,block"`
	Sources    []sourcesBlock   `hcl:"sources,block"`
	BGP        *bgpBlock        `hcl:"bgp,block"`
	Mitigation *mitigationBlock `hcl:"mitigation,block"`
	API        *apiBlock        `hcl:"api,block"`
	Metrics    *metricsBlock    `hcl:"metrics,block"`
	Hooks      []hooksBlock     `hcl:"hooks,block"`
	Kafka      *kafkaBlock      `hcl:"kafka,block"`
	Defaults   *groupBody       `hcl:"defaults,block"`
	Hostgroups []hostgroupBlock `hcl:"hostgroup,block"`
}

type logBlock struct {
	Level     hcl.Expression `hcl:"level"`
	Format    hcl.Expression `hcl:"format"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type daemonBlock struct {
	ShutdownTimeout hcl.Expression `hcl:"shutdown_timeout"`
	DeclRange       hcl.Range      `hcl:",def_range"`
}

type detectionBlock struct {
	Tick        hcl.Expression `hcl:"tick"`
	Confidence  hcl.Expression `hcl:"confidence"`
	BurstFactor hcl.Expression `hcl:"burst_factor"`
	BurstEWMA   hcl.Expression `hcl:"burst_ewma"`
	Window      hcl.Expression `hcl:"window"`
	DeclRange   hcl.Range      `hcl:",def_range"`
}

type sourcesBlock struct {
	NetFlow []listenerBlock    `hcl:"netflow,block"`
	SFlow   []listenerBlock    `hcl:"sflow,block"`
	Mirror  []mirrorBlock      `hcl:"mirror,block"`
	Pcap    []pcapBlock        `hcl:"pcap,block"`
	Kafka   []kafkaSourceBlock `hcl:"kafka,block"`
}

type kafkaSourceBlock struct {
	Name      string         `hcl:"name,label"`
	Topic     hcl.Expression `hcl:"topic"`
	Format    hcl.Expression `hcl:"format"`
	Group     hcl.Expression `hcl:"group"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type mirrorBlock struct {
	Name            string         `hcl:"name,label"`
	Interfaces      hcl.Expression `hcl:"interfaces"`
	Workers         hcl.Expression `hcl:"workers"`
	Fanout          hcl.Expression `hcl:"fanout"`
	FanoutGroup     hcl.Expression `hcl:"fanout_group"`
	Promiscuous     *bool          `hcl:"promiscuous"`
	IncludeOutgoing *bool          `hcl:"include_outgoing"`
	BlockSize       hcl.Expression `hcl:"block_size"`
	Blocks          hcl.Expression `hcl:"blocks"`
	BlockTimeout    hcl.Expression `hcl:"block_timeout"`
	BatchSize       hcl.Expression `hcl:"batch_size"`
	FlushInterval   hcl.Expression `hcl:"flush_interval"`
	DeclRange       hcl.Range      `hcl:",def_range"`
}

type pcapBlock struct {
	Name       string         `hcl:"name,label"`
	File       *string        `hcl:"file"`
	Speed      hcl.Expression `hcl:"speed"`
	Loops      hcl.Expression `hcl:"loops"`
	Sampling   hcl.Expression `hcl:"sampling_rate"`
	Timestamps hcl.Expression `hcl:"timestamps"`
	DeclRange  hcl.Range      `hcl:",def_range"`
}

type listenerBlock struct {
	Name            string          `hcl:"name,label"`
	Listen          hcl.Expression  `hcl:"listen"`
	ReceiveBuffer   hcl.Expression  `hcl:"receive_buffer"`
	Workers         hcl.Expression  `hcl:"workers"`
	QueueSize       hcl.Expression  `hcl:"queue_size"`
	DefaultSampling hcl.Expression  `hcl:"sampling_rate"`
	Allowed         hcl.Expression  `hcl:"allowed_exporters"`
	MaxExporters    hcl.Expression  `hcl:"max_exporters"`
	ExporterIdle    hcl.Expression  `hcl:"exporter_idle"`
	MaxTemplates    hcl.Expression  `hcl:"max_templates"`
	TemplateTTL     hcl.Expression  `hcl:"template_ttl"`
	MaxTemplateFlds hcl.Expression  `hcl:"max_template_fields"`
	MaxRecordPPS    hcl.Expression  `hcl:"max_record_pps"`
	MaxRecordBPS    hcl.Expression  `hcl:"max_record_bps"`
	Exporters       []exporterBlock `hcl:"exporter,block"`
	DeclRange       hcl.Range       `hcl:",def_range"`
}

type exporterBlock struct {
	Address   string         `hcl:"address,label"`
	Sampling  hcl.Expression `hcl:"sampling_rate"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type bgpBlock struct {
	ASN         hcl.Expression  `hcl:"asn"`
	RouterID    hcl.Expression  `hcl:"router_id"`
	Listen      hcl.Expression  `hcl:"listen"`
	Communities hcl.Expression  `hcl:"rtbh_communities"`
	NextHopIPv4 hcl.Expression  `hcl:"rtbh_next_hop_ipv4"`
	NextHopIPv6 hcl.Expression  `hcl:"rtbh_next_hop_ipv6"`
	Neighbors   []neighborBlock `hcl:"neighbor,block"`
	GR          []grBlock       `hcl:"graceful_restart,block"`
	DeclRange   hcl.Range       `hcl:",def_range"`
}

type grBlock struct {
	Enabled       *bool          `hcl:"enabled"`
	RestartTime   hcl.Expression `hcl:"restart_time"`
	Notification  *bool          `hcl:"notification"`
	DeferralTime  hcl.Expression `hcl:"deferral_time"`
	LongLived     *bool          `hcl:"long_lived"`
	LongLivedTime hcl.Expression `hcl:"long_lived_time"`
	DeclRange     hcl.Range      `hcl:",def_range"`
}

type neighborBlock struct {
	Name         string         `hcl:"name,label"`
	Address      hcl.Expression `hcl:"address"`
	ASN          hcl.Expression `hcl:"asn"`
	Port         hcl.Expression `hcl:"port"`
	LocalAddress hcl.Expression `hcl:"local_address"`
	Passive      *bool          `hcl:"passive"`
	Password     *string        `hcl:"password"`
	Multihop     hcl.Expression `hcl:"multihop"`
	Families     hcl.Expression `hcl:"families"`
	Announce     hcl.Expression `hcl:"announce"`
	MaxFlowSpec  hcl.Expression `hcl:"max_flowspec_rules"`
	DeclRange    hcl.Range      `hcl:",def_range"`
}

type mitigationBlock struct {
	DryRun             *bool          `hcl:"dry_run"`
	MaxActive          hcl.Expression `hcl:"max_active"`
	StateFile          *string        `hcl:"state_file"`
	WithdrawOnShutdown *bool          `hcl:"withdraw_on_shutdown"`
	DeclRange          hcl.Range      `hcl:",def_range"`
}

// groupBody is what a hostgroup and the defaults block share.
type groupBody struct {
	Thresholds []thresholdBlock     `hcl:"threshold,block"`
	EWMA       hcl.Expression       `hcl:"ewma"`
	Baseline   hcl.Expression       `hcl:"baseline"`
	Whitelist  hcl.Expression       `hcl:"whitelist"`
	WhiteFlows []whitelistFlowBlock `hcl:"whitelist_flow,block"`
	MaxRules   hcl.Expression       `hcl:"max_rules"`
	OnFull     hcl.Expression       `hcl:"on_budget_full"`
	AggAfter   hcl.Expression       `hcl:"aggregate_after"`
	AggPrefix4 hcl.Expression       `hcl:"aggregate_prefix_ipv4"`
	AggPrefix6 hcl.Expression       `hcl:"aggregate_prefix_ipv6"`
	Responses  []responseBlock      `hcl:"response,block"`
	DeclRange  hcl.Range            `hcl:",def_range"`
}

type hostgroupBlock struct {
	Name       string               `hcl:"name,label"`
	Prefixes   hcl.Expression       `hcl:"prefixes"`
	Thresholds []thresholdBlock     `hcl:"threshold,block"`
	EWMA       hcl.Expression       `hcl:"ewma"`
	Baseline   hcl.Expression       `hcl:"baseline"`
	Whitelist  hcl.Expression       `hcl:"whitelist"`
	WhiteFlows []whitelistFlowBlock `hcl:"whitelist_flow,block"`
	MaxRules   hcl.Expression       `hcl:"max_rules"`
	OnFull     hcl.Expression       `hcl:"on_budget_full"`
	AggAfter   hcl.Expression       `hcl:"aggregate_after"`
	AggPrefix4 hcl.Expression       `hcl:"aggregate_prefix_ipv4"`
	AggPrefix6 hcl.Expression       `hcl:"aggregate_prefix_ipv6"`
	Responses  []responseBlock      `hcl:"response,block"`
	DeclRange  hcl.Range            `hcl:",def_range"`
}

func (h *hostgroupBlock) body() *groupBody {
	return &groupBody{Thresholds: h.Thresholds, EWMA: h.EWMA, Baseline: h.Baseline, Whitelist: h.Whitelist, WhiteFlows: h.WhiteFlows,
		MaxRules: h.MaxRules, OnFull: h.OnFull, AggAfter: h.AggAfter, AggPrefix4: h.AggPrefix4, AggPrefix6: h.AggPrefix6,
		Responses: h.Responses, DeclRange: h.DeclRange}
}

type thresholdBlock struct {
	Direction string         `hcl:"direction,label"`
	PPS       hcl.Expression `hcl:"pps"`
	BPS       hcl.Expression `hcl:"bps"`
	Flows     hcl.Expression `hcl:"flows"`
	TCP       *limitsBlock   `hcl:"tcp,block"`
	TCPSYN    *limitsBlock   `hcl:"tcp_syn,block"`
	UDP       *limitsBlock   `hcl:"udp,block"`
	ICMP      *limitsBlock   `hcl:"icmp,block"`
	Fragment  *limitsBlock   `hcl:"fragment,block"`
	Group     *limitsBlock   `hcl:"group,block"`
	Relative  *relativeBlock `hcl:"relative,block"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type limitsBlock struct {
	PPS       hcl.Expression `hcl:"pps"`
	BPS       hcl.Expression `hcl:"bps"`
	Flows     hcl.Expression `hcl:"flows"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type relativeBlock struct {
	Factor    hcl.Expression `hcl:"factor"`
	FloorPPS  hcl.Expression `hcl:"floor_pps"`
	FloorBPS  hcl.Expression `hcl:"floor_bps"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type responseBlock struct {
	Name      string         `hcl:"name,label"`
	When      hcl.Expression `hcl:"when"`
	FlowSpec  *flowspecBlock `hcl:"flowspec,block"`
	RTBH      *rtbhBlock     `hcl:"rtbh,block"`
	Duration  hcl.Expression `hcl:"duration"`
	Extend    *bool          `hcl:"extend"`
	Hold      hcl.Expression `hcl:"hold"`
	Escalate  *escalateBlock `hcl:"escalate,block"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type flowspecBlock struct {
	Action    hcl.Expression `hcl:"action"`
	Rate      hcl.Expression `hcl:"rate"`
	Redirect  hcl.Expression `hcl:"redirect"`
	DSCP      hcl.Expression `hcl:"dscp"`
	Coverage  hcl.Expression `hcl:"coverage"`
	MaxRules  hcl.Expression `hcl:"max_rules_per_attack"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type rtbhBlock struct {
	Communities   hcl.Expression `hcl:"communities"`
	PrefixLength4 hcl.Expression `hcl:"prefix_length_ipv4"`
	PrefixLength6 hcl.Expression `hcl:"prefix_length_ipv6"`
	DeclRange     hcl.Range      `hcl:",def_range"`
}

type escalateBlock struct {
	After     hcl.Expression `hcl:"after"`
	FlowSpec  *flowspecBlock `hcl:"flowspec,block"`
	RTBH      *rtbhBlock     `hcl:"rtbh,block"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type apiBlock struct {
	Socket    *string        `hcl:"socket"`
	Listen    hcl.Expression `hcl:"listen"`
	Token     *string        `hcl:"token"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type metricsBlock struct {
	Listen    hcl.Expression `hcl:"listen"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type hooksBlock struct {
	Exec     []execHookBlock    `hcl:"exec,block"`
	Webhooks []webhookHookBlock `hcl:"webhook,block"`
}

type execHookBlock struct {
	Name      string         `hcl:"name,label"`
	Path      *string        `hcl:"path"`
	Timeout   hcl.Expression `hcl:"timeout"`
	Events    hcl.Expression `hcl:"events"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type webhookHookBlock struct {
	Name      string             `hcl:"name,label"`
	URL       *string            `hcl:"url"`
	Headers   *map[string]string `hcl:"headers"`
	Timeout   hcl.Expression     `hcl:"timeout"`
	Retries   hcl.Expression     `hcl:"retries"`
	Events    hcl.Expression     `hcl:"events"`
	DeclRange hcl.Range          `hcl:",def_range"`
}

type kafkaBlock struct {
	Brokers         hcl.Expression    `hcl:"brokers"`
	ClientID        *string           `hcl:"client_id"`
	Roles           hcl.Expression    `hcl:"roles"`
	Node            hcl.Expression    `hcl:"node"`
	Group           hcl.Expression    `hcl:"group"`
	SessionTimeout  hcl.Expression    `hcl:"session_timeout"`
	MaxBuffered     hcl.Expression    `hcl:"max_buffered"`
	TLS             []kafkaTLSBlock   `hcl:"tls,block"`
	SASL            []kafkaSASLBlock  `hcl:"sasl,block"`
	FlowTopic       []kafkaTopicBlock `hcl:"flow_topic,block"`
	MitigationTopic []kafkaTopicBlock `hcl:"mitigation_topic,block"`
	DeclRange       hcl.Range         `hcl:",def_range"`
}

type kafkaTLSBlock struct {
	CAFile             *string   `hcl:"ca_file"`
	CertFile           *string   `hcl:"cert_file"`
	KeyFile            *string   `hcl:"key_file"`
	ServerName         *string   `hcl:"server_name"`
	InsecureSkipVerify *bool     `hcl:"insecure_skip_verify"`
	DeclRange          hcl.Range `hcl:",def_range"`
}

type kafkaSASLBlock struct {
	Mechanism hcl.Expression `hcl:"mechanism"`
	Username  *string        `hcl:"username"`
	Password  *string        `hcl:"password"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type kafkaTopicBlock struct {
	Name        *string        `hcl:"name"`
	Partitions  hcl.Expression `hcl:"partitions"`
	Replication hcl.Expression `hcl:"replication"`
	DeclRange   hcl.Range      `hcl:",def_range"`
}
