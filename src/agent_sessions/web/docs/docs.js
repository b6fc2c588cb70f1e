// The interactive reference of this server's API: Swagger UI (vendored: swagger-ui-bundle.js, its
// licence in LICENSE-swagger-ui) on /openapi.json. "Authorize" takes an API key (x-api-key) or a
// bearer token; "Try it out" sends requests to this same server. Nothing is loaded from elsewhere.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#reference",
  deepLinking: true,
  persistAuthorization: false,   // a pasted key is forgotten when the tab closes
  tryItOutEnabled: false,
  validatorUrl: null,            // never send the document to an online validator
  displayRequestDuration: true,
  defaultModelsExpandDepth: 0,
});
