//! A stand-in for Azure Resource Manager, as "Track asynchronous Azure
//! operations" and "Throttling Resource Manager requests" describe it: an
//! operation answers `202` (or `201`) with `Azure-AsyncOperation` (and
//! `Location`) and `Retry-After`; the status resource answers `200` with
//! `{"status": "InProgress"}` until `Succeeded`, `Failed` (with an `error`)
//! or `Canceled`; an operation with only `Location` answers `202` there
//! until it answers `200` with the resource; a throttled request answers
//! `429` with `Retry-After`; errors are
//! `{"error": {"code", "message", "details": [...]}}`.
//!
//! | request | answer |
//! |---|---|
//! | `POST {RG}/providers/Microsoft.Compute/virtualMachines/VM/start` | 202, `Azure-AsyncOperation` and `Location`, `Retry-After: 1` |
//! | `GET /subscriptions/SUB/providers/Microsoft.Compute/locations/westus/operations/VM` | `InProgress` (`Provisioning`, the provider's own word, when VM's name begins `vm-own`) with `Retry-After: 1`, then as VM's name begins: `vm-failed` Failed, `vm-canceled` Canceled, any other Succeeded |
//! | `PUT {RG}/providers/Microsoft.Storage/storageAccounts/NAME` | 202 with `Location` only, `Retry-After: 1` |
//! | `GET /subscriptions/SUB/providers/Microsoft.Storage/operations/NAME` | 202 with `Retry-After: 1`, then 200 with the storage account |
//! | `PUT {RG}/providers/Microsoft.Resources/deployments/bad` | 400 `InvalidTemplateDeployment` with a `QuotaExceeded` detail |
//! | `PUT {RG}/providers/Microsoft.Resources/deployments/NAME` | 201 `Accepted`, `Azure-AsyncOperation`, `Retry-After: 1` |
//! | `GET {RG}/providers/Microsoft.Resources/deployments/NAME/operationStatuses/NAME` | `Running` with `Retry-After: 1`, then `Succeeded` |
//! | `GET {RG}/providers/Microsoft.Resources/deployments/NAME` | 200 with the deployment, `Succeeded` |
//! | `GET /subscriptions/SUB/resourcegroups/missing` | 404 `ResourceGroupNotFound` |
//! | `GET /subscriptions/SUB/resourcegroups/busy-KEY` | 429 `SubscriptionRequestsThrottled`, `Retry-After: 1`, once; then the group |
//! | `GET /subscriptions/SUB/resourcegroups/NAME` | 200 with the group |
//!
//! `{RG}` is `/subscriptions/SUB/resourceGroups/RG`, any subscription and group.

use http::{Method, Response};

use super::{PerPath, Scenario, json, segments, with};
use crate::{Body, TestRequest, TestServer, respond};

/// The `Retry-After` of every answer that asks for one, in seconds.
pub const RETRY_AFTER_SECS: u64 = 1;

const API_VERSION: &str = "api-version=2024-07-01";

/// Starts the stand-in on a free port.
pub async fn start() -> TestServer {
    start_on(0).await.expect("bind a port on 127.0.0.1")
}

/// Starts the stand-in on `port` (0 for a free one).
pub async fn start_on(port: u16) -> std::io::Result<TestServer> {
    super::serve(port, answer).await
}

/// The path of a resource group's resource.
pub fn in_group(resource: &str) -> String {
    format!("/subscriptions/sub-1/resourceGroups/rg-1/providers/{resource}")
}

/// The demo's requests.
pub fn scenarios() -> Vec<Scenario> {
    let start = |what, vm: &str| {
        Scenario::new(
            what,
            Method::POST,
            &format!(
                "{}?{API_VERSION}",
                in_group(&format!("Microsoft.Compute/virtualMachines/{vm}/start"))
            ),
        )
    };
    vec![
        start(
            "202 + Azure-AsyncOperation: Succeeded; Location 204",
            "vm-ok-demo",
        ),
        start(
            "202 + Azure-AsyncOperation: Provisioning, Succeeded",
            "vm-own-demo",
        ),
        start("202 + Azure-AsyncOperation: Failed", "vm-failed-demo"),
        start("202 + Azure-AsyncOperation: Canceled", "vm-canceled-demo"),
        Scenario::new(
            "201 + Azure-AsyncOperation: Succeeded; the resource",
            Method::PUT,
            &format!(
                "{}?{API_VERSION}",
                in_group("Microsoft.Resources/deployments/deploy-demo")
            ),
        )
        .with_body(r#"{"properties":{"mode":"Incremental"}}"#),
        Scenario::new(
            "202 + Location only: 202, then 200 with the account",
            Method::PUT,
            &format!(
                "{}?{API_VERSION}",
                in_group("Microsoft.Storage/storageAccounts/store-demo")
            ),
        )
        .with_body(r#"{"location":"westus","sku":{"name":"Standard_LRS"},"kind":"StorageV2"}"#),
        Scenario::new(
            "400, InvalidTemplateDeployment + a detail",
            Method::PUT,
            &format!(
                "{}?{API_VERSION}",
                in_group("Microsoft.Resources/deployments/bad")
            ),
        )
        .with_body(r#"{"properties":{"mode":"Incremental"}}"#),
        Scenario::get(
            "429 + Retry-After: 1, then 200",
            &format!("/subscriptions/sub-1/resourcegroups/busy-demo?{API_VERSION}"),
        ),
        Scenario::get(
            "404, ResourceGroupNotFound",
            &format!("/subscriptions/sub-1/resourcegroups/missing?{API_VERSION}"),
        ),
    ]
}

fn answer(seen: &PerPath, request: &TestRequest) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let count = seen.count(&path);
    // Resource Manager's status URLs are absolute.
    let origin = format!(
        "http://{}",
        request
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1")
    );
    let retry_after = ("retry-after", RETRY_AFTER_SECS.to_string());
    match (request.method().clone(), segments(&path).as_slice()) {
        (
            Method::POST,
            [
                "subscriptions",
                sub,
                "resourceGroups",
                _,
                "providers",
                "Microsoft.Compute",
                "virtualMachines",
                vm,
                "start",
            ],
        ) => {
            let operations = format!(
                "{origin}/subscriptions/{sub}/providers/Microsoft.Compute/locations/westus"
            );
            with(
                respond(202, ""),
                &[
                    (
                        "azure-asyncoperation",
                        format!("{operations}/operations/{vm}?{API_VERSION}"),
                    ),
                    (
                        "location",
                        format!("{operations}/operationResults/{vm}?{API_VERSION}"),
                    ),
                    retry_after,
                ],
            )
        }
        (
            Method::GET,
            [
                "subscriptions",
                _,
                "providers",
                "Microsoft.Compute",
                "locations",
                _,
                "operations",
                vm,
            ],
        ) => {
            if count == 1 {
                // Any status but the terminal ones means running: a
                // provider may use its own word.
                let running = if vm.starts_with("vm-own") {
                    "Provisioning"
                } else {
                    "InProgress"
                };
                return with(status(vm, running, ""), &[retry_after]);
            }
            if vm.starts_with("vm-failed") {
                status(
                    vm,
                    "Failed",
                    r#","error":{"code":"AllocationFailed","message":"Allocation failed. There is not enough capacity for the requested VM size in this region.","details":[{"code":"SkuNotAvailable","message":"The requested size is not available in westus."}]}"#,
                )
            } else if vm.starts_with("vm-canceled") {
                status(
                    vm,
                    "Canceled",
                    r#","error":{"code":"OperationCanceled","message":"The operation was canceled."}"#,
                )
            } else {
                status(vm, "Succeeded", "")
            }
        }
        (
            Method::GET,
            [
                "subscriptions",
                _,
                "providers",
                "Microsoft.Compute",
                "locations",
                _,
                "operationResults",
                _,
            ],
        ) => respond(204, ""),
        (
            Method::PUT,
            [
                "subscriptions",
                sub,
                "resourceGroups",
                _,
                "providers",
                "Microsoft.Storage",
                "storageAccounts",
                name,
            ],
        ) => with(
            respond(202, ""),
            &[
                (
                    "location",
                    format!(
                        "{origin}/subscriptions/{sub}/providers/Microsoft.Storage/operations/{name}?monitor=true&{API_VERSION}"
                    ),
                ),
                retry_after,
            ],
        ),
        (
            Method::GET,
            [
                "subscriptions",
                sub,
                "providers",
                "Microsoft.Storage",
                "operations",
                name,
            ],
        ) => {
            if count == 1 {
                return with(respond(202, ""), &[retry_after]);
            }
            json(
                200,
                format!(
                    r#"{{"id":"/subscriptions/{sub}/resourceGroups/rg-1/providers/Microsoft.Storage/storageAccounts/{name}","name":"{name}","location":"westus","kind":"StorageV2","properties":{{"provisioningState":"Succeeded"}}}}"#
                ),
            )
        }
        (
            Method::PUT,
            [
                "subscriptions",
                _,
                "resourceGroups",
                _,
                "providers",
                "Microsoft.Resources",
                "deployments",
                "bad",
            ],
        ) => json(
            400,
            r#"{"error":{"code":"InvalidTemplateDeployment","message":"The template deployment 'bad' is not valid according to the validation procedure.","details":[{"code":"QuotaExceeded","message":"Operation could not be completed as it results in exceeding approved standardDSv3Family Cores quota."}]}}"#,
        ),
        (
            Method::PUT,
            [
                "subscriptions",
                _,
                "resourceGroups",
                _,
                "providers",
                "Microsoft.Resources",
                "deployments",
                name,
            ],
        ) => with(
            json(
                201,
                format!(r#"{{"name":"{name}","properties":{{"provisioningState":"Accepted"}}}}"#),
            ),
            &[
                (
                    "azure-asyncoperation",
                    format!("{origin}{path}/operationStatuses/{name}?{API_VERSION}"),
                ),
                retry_after,
            ],
        ),
        (
            Method::GET,
            [
                "subscriptions",
                _,
                "resourceGroups",
                _,
                "providers",
                "Microsoft.Resources",
                "deployments",
                name,
                "operationStatuses",
                _,
            ],
        ) => {
            if count == 1 {
                with(status(name, "Running", ""), &[retry_after])
            } else {
                status(name, "Succeeded", "")
            }
        }
        (
            Method::GET,
            [
                "subscriptions",
                _,
                "resourceGroups",
                _,
                "providers",
                "Microsoft.Resources",
                "deployments",
                name,
            ],
        ) => json(
            200,
            format!(
                r#"{{"name":"{name}","properties":{{"provisioningState":"Succeeded","outputs":{{}}}}}}"#
            ),
        ),
        (Method::GET, ["subscriptions", _, "resourcegroups", "missing"]) => error(
            404,
            "ResourceGroupNotFound",
            "Resource group 'missing' could not be found.",
        ),
        (Method::GET, ["subscriptions", sub, "resourcegroups", name]) => {
            if name.starts_with("busy") && count == 1 {
                return with(
                    error(
                        429,
                        "SubscriptionRequestsThrottled",
                        "Number of 'read' requests for subscription exceeded. Please try again after '1' seconds.",
                    ),
                    &[
                        retry_after,
                        (
                            "x-ms-ratelimit-remaining-subscription-reads",
                            "0".to_owned(),
                        ),
                    ],
                );
            }
            with(
                json(
                    200,
                    format!(
                        r#"{{"id":"/subscriptions/{sub}/resourceGroups/{name}","name":"{name}","location":"westus","properties":{{"provisioningState":"Succeeded"}}}}"#
                    ),
                ),
                &[(
                    "x-ms-ratelimit-remaining-subscription-reads",
                    "11999".to_owned(),
                )],
            )
        }
        _ => error(
            404,
            "InvalidResourceType",
            "The resource type could not be found.",
        ),
    }
}

/// A status resource's answer: `{"name", "status"}` and what `rest` adds.
fn status(name: &str, status: &str, rest: &str) -> Response<Body> {
    json(
        200,
        format!(
            r#"{{"name":"{name}","status":"{status}","startTime":"2025-01-06T20:56:36.0028+00:00"{rest}}}"#
        ),
    )
}

/// An error as Resource Manager writes it.
fn error(status: u16, code: &str, message: &str) -> Response<Body> {
    json(
        status,
        format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#),
    )
}
