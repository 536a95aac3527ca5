// The archiver's query API, same origin; every call carries the analyst's key.

import { errorMessage } from "./format.js";

const KEY = "sift.apiKey"; // sessionStorage only: gone when the tab closes

export class ApiError extends Error {
  constructor(status, body) {
    super(errorMessage(status, body));
    this.status = status;
  }
}

export const storedKey = () => sessionStorage.getItem(KEY);
export const storeKey = (key) => sessionStorage.setItem(KEY, key);
export const forgetKey = () => sessionStorage.removeItem(KEY);

function url(path, params = {}) {
  const query = new URLSearchParams(params).toString();
  return `${path}${query ? `?${query}` : ""}`;
}

async function call(path, params, key) {
  const response = await fetch(url(path, params), {
    headers: { "X-API-Key": key ?? storedKey() ?? "" },
  });
  if (!response.ok) {
    const body = await response.json().catch(() => null); // a proxy's HTML error page
    throw new ApiError(response.status, body);
  }
  return response;
}

/** JSON from a GET route. */
export async function getJson(path, params, key) {
  return (await call(path, params, key)).json();
}

/** The route's own CSV (`format=csv`), as text. */
export async function getCsv(path, params) {
  return (await call(path, { ...params, format: "csv" })).text();
}
