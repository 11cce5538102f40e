// Renders /openapi.json as a list of operations with a small "try it" form.
// Self-contained: no CDN, no framework, so the page works on air-gapped sites.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

function tryForm(path, method, op) {
  const form = el("form", {});
  const inputs = {};
  for (const p of op.parameters || []) {
    const input = el("input", { type: "text", name: p.name });
    inputs[p.name] = { input, where: p.in };
    form.append(el("label", {}, `${p.name} (${p.in})`, input));
  }
  let body = null, file = null;
  const content = (op.requestBody || {}).content || {};
  if (content["application/json"]) {
    body = el("textarea", { rows: "4" });
    form.append(el("label", {}, "JSON body", body));
  } else if (content["multipart/form-data"]) {
    file = el("input", { type: "file" });
    form.append(el("label", {}, "file", file));
  }
  const out = el("pre", { class: "response" });
  form.append(el("button", { type: "submit" }, "Send"), out);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let url = path;
    const query = new URLSearchParams();
    for (const [name, { input, where }] of Object.entries(inputs)) {
      if (where === "path") url = url.replace(`{${name}}`, encodeURIComponent(input.value));
      else if (input.value) query.set(name, input.value);
    }
    if ([...query].length) url += "?" + query;
    const headers = {};
    const token = document.getElementById("token").value.trim();
    if (token) headers["Authorization"] = "Bearer " + token;
    let payload;
    if (body) { headers["Content-Type"] = "application/json"; payload = body.value; }
    if (file && file.files[0]) { payload = new FormData(); payload.append("file", file.files[0]); }
    const resp = await fetch(url, { method: method.toUpperCase(), headers, body: payload });
    const text = (resp.headers.get("content-type") || "").includes("json")
      ? JSON.stringify(await resp.json(), null, 2) : `(${resp.headers.get("content-type")})`;
    out.textContent = `${resp.status} ${resp.statusText}\n${text}`;
  });
  return form;
}

async function main() {
  const doc = await (await fetch("/openapi.json")).json();
  document.getElementById("title").textContent = `${doc.info.title} ${doc.info.version}`;
  const ops = document.getElementById("ops");
  ops.textContent = "";
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const summary = el("summary", {},
        el("span", { class: "method" }, method.toUpperCase()),
        el("span", { class: "path" }, path), " ", op.summary || "",
        el("span", { class: "perm" }, `permission: ${op["x-permission"]}`));
      ops.append(el("div", { class: "op", "data-operation": op.operationId },
        el("details", {}, summary, tryForm(path, method, op))));
    }
  }
}

main().catch((err) => { document.getElementById("ops").textContent = "Failed: " + err; });
