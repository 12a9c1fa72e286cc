// The API's wire types, as the server's pydantic schemas (gpufleet/schemas) define them.

export type WorkerState = "not_ready" | "ready" | "unreachable" | "maintenance";
export type InstanceState =
  | "pending"
  | "scheduled"
  | "downloading"
  | "starting"
  | "running"
  | "error"
  | "unreachable"
  | "stopping";
export type Role = "admin" | "user";

export interface Me {
  id: number;
  username: string;
  role: Role;
  must_change_password: boolean;
  authenticated_by: "session" | "api_key";
}

export interface Device {
  id: string; // <worker>:<type>:<index>
  worker_id: number;
  worker_name: string;
  index: number;
  type: "cuda" | "rocm" | "metal" | "cpu";
  vendor: string;
  name: string;
  uuid: string | null;
  memory_total: number;
  memory_used: number;
  compute_capability: string | null;
  unified_memory: boolean;
  simulated: boolean;
  utilization: number | null;
  temperature: number | null;
  cores: number | null;
  updated_at: string;
}

export interface DeviceHolder {
  instance_id: number;
  instance_name: string;
  model_name: string;
  state: string;
  bytes: number;
}

// GET /api/devices: a device with gpufleet's allocation on it (claims) beside live use.
export interface DeviceDetail extends Device {
  allocated: number;
  holders: DeviceHolder[];
}

export interface Worker {
  id: number;
  name: string;
  ip: string;
  port: number;
  state: WorkerState;
  state_message: string | null;
  labels: Record<string, string>;
  system_reserved: { ram: number; vram: number };
  heartbeat_at: string | null;
  created_at: string;
  updated_at: string;
  cpu_cores: number;
  memory_total: number;
  memory_used: number;
  gpu_count: number;
  vram_total: number;
  vram_used: number;
  os: string | null;
  arch: string | null;
  gpufleet_version: string | null;
  engines: Record<string, string>;
  devices: Device[];
}

export type ModelSource = "huggingface" | "modelscope" | "ollama_library" | "local_path";

export interface ModelSpec {
  name: string;
  source: ModelSource;
  huggingface_repo_id?: string | null;
  huggingface_filename?: string | null;
  modelscope_model_id?: string | null;
  modelscope_file_path?: string | null;
  ollama_library_model_name?: string | null;
  local_path?: string | null;
  backend?: "llama.cpp" | "vllm" | null;
  backend_parameters?: string[];
  replicas?: number;
  placement_strategy?: "spread" | "binpack";
  cpu_offloading?: boolean;
  distributed_inference_across_workers?: boolean;
  worker_selector?: Record<string, string>;
  gpu_selector?: { device_ids: string[] } | null;
  ctx_size?: number | null;
  description?: string | null;
  // On demand / autoscaling (docs/on-demand.md): both bounds or neither; with both, `replicas` is the
  // current target that gpufleet moves between them; min_replicas 0 = loaded on the first request.
  min_replicas?: number | null;
  max_replicas?: number | null;
  idle_timeout?: number | null; // seconds without requests before an instance unloads; null: never
  priority?: number; // -1000..1000: a higher one evicts lower on-demand models when memory is short
  max_concurrent_requests?: number | null; // per instance; null: the engine's parallel slots
  max_queue?: number;
  queue_timeout?: number; // seconds
}

export interface Model extends Required<Omit<ModelSpec, "gpu_selector">> {
  id: number;
  gpu_selector: { device_ids: string[] } | null;
  created_at: string;
  updated_at: string;
  ready_replicas: number;
  spec_hash: string | null;
  updated_replicas: number;
  outdated_replicas: number;
  /** Only in the answer to a create or update: how many replicas can be placed now, and why not all. */
  placeable_replicas?: number | null;
  warnings?: string[];
  running_replicas: number;
  loading_replicas: number; // pending, scheduled, downloading or starting
  queued_requests: number; // waiting in the gateway's queue, on all servers
  last_request_at: string | null;
}

export type ModelEventKind = "load" | "unload" | "scale_up" | "scale_down" | "evict" | "evicted";

// GET /api/models/{id}/events (newest first): what gpufleet did to a deployment on its own.
export interface ModelEvent {
  id: number;
  model_id: number;
  kind: ModelEventKind;
  message: string;
  created_at: string;
}

export interface Claim {
  ram: number;
  vram: Record<string, number>;
  offload_layers?: number;
  total_layers?: number;
  tensor_split?: number[];
  mode?: string;
}

export interface Subordinate {
  worker_id: number;
  worker_name: string;
  device_ids: string[];
  rpc_port: number | null;
  rpc_host: string | null;
  rpc_pid: number | null;
  message: string | null;
  claim: Claim;
}

export interface Instance {
  id: number;
  name: string;
  model_id: number | null;
  model_name: string;
  state: InstanceState;
  state_message: string | null;
  worker_id: number | null;
  worker_name: string | null;
  device_ids: string[];
  port: number | null;
  pid: number | null;
  claim: Claim | null;
  subordinates: Subordinate[];
  restart_count: number;
  download_progress: number | null;
  engine_command: string[] | null;
  version: number;
  created_at: string;
  updated_at: string;
  spec_hash: string | null;
  ray_head?: string | null; // vLLM across workers: the instance's Ray head (host:port on its main worker)
}

export interface PreviewPlacement {
  mode: string;
  worker_name: string;
  device_ids: string[];
  claim: Claim;
  subordinates: { worker_id: number; worker_name: string; device_ids: string[]; claim: Claim }[];
}

export interface PreviewResult {
  schedulable: boolean;
  placements: PreviewPlacement[];
  message: string;
  reasons: { worker_name: string; reason: string }[];
}

export interface ApiKey {
  id: number;
  name: string;
  prefix: string;
  user_id: number;
  username: string;
  expires_at: string | null;
  allowed_models: string[] | null;
  requests_per_minute: number | null;
  tokens_per_day: number | null;
  created_at: string;
  last_used_at: string | null;
}

export interface ApiKeyCreated extends ApiKey {
  key: string;
}

export interface User {
  id: number;
  username: string;
  role: Role;
  must_change_password: boolean;
  created_at: string;
  updated_at: string;
}

export type UsageGroup = "model" | "user" | "key" | "day";

export interface UsageRow {
  model_name: string | null;
  user_id: number | null;
  username: string | null;
  api_key_id: number | null;
  api_key_name: string | null;
  day: string | null;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface UsagePoint {
  time: string;
  model_name: string;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface UsageSeries {
  step: "hour" | "day";
  buckets: string[];
  points: UsagePoint[];
}

export interface WatchEvent {
  kind?: "workers" | "models" | "instances";
  type: "ADDED" | "MODIFIED" | "DELETED" | "SYNCED" | "PING"; // as gpufleet/schemas/events.py spells them
  id?: number;
  object?: Record<string, unknown>;
}
