// A Worker that calls whatever version of the adapter is current: `reconciler apply` rewrites
// loras.json when a new version passes its checks, and CI deploys the Worker after it.
import loras from "./loras.json";

export default {
  async fetch(request, env) {
    const { question } = await request.json();
    const adapter = loras["support-bot"];
    const answer = await env.AI.run(adapter.model, {
      messages: [{ role: "user", content: question }],
      lora: adapter.name,
    });
    return Response.json(answer);
  },
};
