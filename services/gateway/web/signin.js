// Sign in with an e-mail and password (OAuth2 password flow), or paste an API key.

import { api, signIn, signOut, takeSignOutReason, useApiKey } from "./api.js";
import { h, errorBox, notice } from "./dom.js";

function field(id, label, attrs) {
  return h("div", { class: "field" }, h("label", { for: id }, label), h("input", { id, name: id, ...attrs }));
}

export function signInView(onSignedIn) {
  const reason = takeSignOutReason();
  const message = h("div", { "aria-live": "polite" }, reason ? notice(reason) : null);

  async function attempt(event, action) {
    event.preventDefault();
    const button = event.target.querySelector("button[type=submit]");
    button.disabled = true;
    message.replaceChildren();
    try {
      await action(new FormData(event.target));
      location.hash = location.hash || "#/identify";
      onSignedIn();
    } catch (error) {
      signOut();
      takeSignOutReason();  // the reason is shown right here instead
      message.replaceChildren(errorBox(error));
    } finally {
      button.disabled = false;
    }
  }

  const passwordForm = h("form", {
    class: "card", "aria-labelledby": "signin-title",
    onsubmit: (e) => attempt(e, (data) => signIn(data.get("email"), data.get("password"))),
  },
  h("h2", { id: "signin-title" }, "Sign in"),
  field("email", "E-mail", { type: "email", autocomplete: "username", required: true }),
  field("password", "Password", { type: "password", autocomplete: "current-password", required: true }),
  h("button", { type: "submit" }, "Sign in"));

  const keyForm = h("form", {
    class: "card", "aria-labelledby": "key-title",
    onsubmit: (e) => attempt(e, async (data) => {
      useApiKey(String(data.get("api-key")).trim());
      await api.get("/v1/individuals", { limit: 1 });  // proves the key before the page trusts it
    }),
  },
  h("h2", { id: "key-title" }, "Use an API key"),
  field("api-key", "API key", { type: "password", autocomplete: "off", required: true, spellcheck: "false" }),
  h("p", { class: "hint" }, "Kept only in this browser tab, until you sign out or close it."),
  h("button", { type: "submit" }, "Use this key"));

  return h("section", { class: "signin" },
    h("h1", {}, "Finprint"),
    h("p", { class: "lead" }, "Identify whales and dolphins from photos, review matches, and keep your catalogue."),
    message,
    h("div", { class: "two-up" }, passwordForm, keyForm));
}
