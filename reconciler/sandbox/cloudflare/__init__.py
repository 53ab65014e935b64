"""The emulated Cloudflare Workers AI API: finetunes, assets, the model catalogue, inference."""
