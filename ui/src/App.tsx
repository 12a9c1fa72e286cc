// Routes: one per page, each page in its own module under pages/. Admins see the whole cluster
// (kept live by the watch stream); users see the Playground, their API keys and their usage.

import { Navigate, Route, Routes } from "react-router";

import { Layout } from "./components/Layout";
import { ApiKeysPage } from "./pages/ApiKeys";
import { DashboardPage } from "./pages/Dashboard";
import { GpusPage } from "./pages/Gpus";
import { InstancePage } from "./pages/Instance";
import { ModelPage } from "./pages/Model";
import { ModelsPage } from "./pages/Models";
import { NotFoundPage } from "./pages/NotFound";
import { PlaygroundPage } from "./pages/Playground";
import { UsagePage } from "./pages/Usage";
import { UsersPage } from "./pages/Users";
import { WorkerPage } from "./pages/Worker";
import { WorkersPage } from "./pages/Workers";
import { AuthGate, useAuth } from "./state/auth";
import { ClusterProvider } from "./state/cluster";

function AdminRoutes() {
  return (
    <ClusterProvider>
      <Layout admin>
        <Routes>
          <Route path="/" element={<DashboardPage />} />
          <Route path="/workers" element={<WorkersPage />} />
          <Route path="/workers/:id" element={<WorkerPage />} />
          <Route path="/gpus" element={<GpusPage />} />
          <Route path="/models" element={<ModelsPage />} />
          <Route path="/models/:id" element={<ModelPage />} />
          <Route path="/instances/:id" element={<InstancePage />} />
          <Route path="/playground" element={<PlaygroundPage />} />
          <Route path="/api-keys" element={<ApiKeysPage />} />
          <Route path="/users" element={<UsersPage />} />
          <Route path="/usage" element={<UsagePage />} />
          <Route path="*" element={<NotFoundPage />} />
        </Routes>
      </Layout>
    </ClusterProvider>
  );
}

function UserRoutes() {
  return (
    <Layout admin={false}>
      <Routes>
        <Route path="/" element={<Navigate to="/playground" replace />} />
        <Route path="/playground" element={<PlaygroundPage />} />
        <Route path="/api-keys" element={<ApiKeysPage />} />
        <Route path="/usage" element={<UsagePage />} />
        <Route path="*" element={<NotFoundPage />} />
      </Routes>
    </Layout>
  );
}

function Routed() {
  const { me } = useAuth();
  return me.role === "admin" ? <AdminRoutes /> : <UserRoutes />;
}

export function App() {
  return (
    <AuthGate>
      <Routed />
    </AuthGate>
  );
}
