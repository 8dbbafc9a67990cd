//! A client of a running gateway's admin API, for the tests that operate
//! weir over HTTP.

use super::DEFAULT_DEADLINE;
use super::gateway::Gateway;
use serde_json::Value;

/// The admin API of one gateway.
pub(crate) struct Admin {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Admin {
    pub(crate) fn of(gateway: &Gateway) -> Admin {
        Admin {
            base: gateway.admin_url(),
            token: None,
            http: reqwest::Client::new(),
        }
    }

    pub(crate) fn with_token(mut self, token: &str) -> Admin {
        self.token = Some(token.to_owned());
        self
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        accept: &str,
    ) -> reqwest::Response {
        self.send_body(method, path, accept, None).await
    }

    /// Sends `body` (JSON) with the request when given.
    pub(crate) async fn send_body(
        &self,
        method: reqwest::Method,
        path: &str,
        accept: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header(reqwest::header::ACCEPT, accept);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        tokio::time::timeout(DEFAULT_DEADLINE, request.send())
            .await
            .unwrap_or_else(|_| panic!("{method} {path} answered in time"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub(crate) async fn json(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        self.json_body(method, path, None).await
    }

    /// A request with a JSON body and its JSON answer.
    pub(crate) async fn json_body(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let response = self
            .send_body(method.clone(), path, "application/json", body)
            .await;
        let status = response.status().as_u16();
        let body = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} answers JSON: {e}"));
        (status, body)
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.json(reqwest::Method::GET, path).await
    }

    pub(crate) async fn post(&self, path: &str) -> (u16, Value) {
        self.json(reqwest::Method::POST, path).await
    }

    pub(crate) async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.json_body(reqwest::Method::POST, path, Some(body))
            .await
    }

    pub(crate) async fn put_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.json_body(reqwest::Method::PUT, path, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> (u16, Value) {
        self.json(reqwest::Method::DELETE, path).await
    }

    /// `GET /metrics`, in the format `accept` asks for: status, content type
    /// and text.
    pub(crate) async fn metrics(&self, accept: &str) -> (u16, String, String) {
        let response = self.send(reqwest::Method::GET, "/metrics", accept).await;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("the metrics text");
        (status, content_type, text)
    }
}
