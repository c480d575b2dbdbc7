// What the pages know of the signed-in token, and the cleanup of the page being left.

/** role: "admin" or "team"; team: the team object of a team token. */
export const session = { role: null, team: null };

let leaving = [];

/** A page registers here what must stop when another page opens (its timers). */
export function onLeave(stop) {
  leaving.push(stop);
}

export function leavePage() {
  for (const stop of leaving) stop();
  leaving = [];
}
